"""GGUF files are untrusted: counts and sizes are checked against the file before anything is allocated,
and an unsupported architecture is refused before its vocabulary is read."""
from __future__ import annotations

import resource
import struct
import time

import numpy as np
import pytest

from edge_sdk.cli import main
from edge_sdk.errors import SourceError, UnsupportedModelError

gguf = pytest.importorskip("gguf")


def _export(capsys, path, tmp_path):
    code = main(["export", str(path), "--output", str(tmp_path / "out"), "--quiet"])
    return code, capsys.readouterr().err.strip()


def _kv_string(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v


def test_a_tiny_file_declaring_a_2_to_the_40_array(capsys, tmp_path):
    """178 bytes that once made export allocate 23 GB."""
    f = tmp_path / "bomb.gguf"
    key = b"tokenizer.ggml.scores"
    body = (b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + _kv_string("general.architecture", "llama")
            + struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 6, 1 << 40))
    f.write_bytes(body + b"\0" * (178 - len(body)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    code, err = _export(capsys, f, tmp_path)
    assert code == 2 and "tokenizer.ggml.scores needs" in err and "truncated or corrupt" in err, err
    assert time.perf_counter() - t0 < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: nothing big was allocated
    assert not (tmp_path / "out").exists()


def _vocab_gguf(path, arch: str, n_tokens: int, arch_first: bool, tensors: bool = False):
    from edge_sdk.exporters.testing import write_gguf

    return write_gguf(path, arch, tokens=[f"t{i}" for i in range(n_tokens)], arch_after_vocab=not arch_first,
                      tensors={"token_embd.weight": np.zeros((4, 8), np.float32)} if tensors else None)


@pytest.mark.parametrize("arch_first", [True, False], ids=["architecture first", "architecture after the vocab"])
def test_unsupported_architecture_with_a_huge_vocab_is_refused_quickly(capsys, tmp_path, arch_first):
    """An 18 MB file with a 2-million-token vocab took 72 s and 2.9 GB before being rejected."""
    f = _vocab_gguf(tmp_path / "big.gguf", "mamba", 2_000_000, arch_first)
    t0 = time.perf_counter()
    code, err = _export(capsys, f, tmp_path)
    elapsed = time.perf_counter() - t0
    assert code == 2 and "mamba" in err and "llama" in err, err  # names the supported ones
    assert elapsed < (3 if arch_first else 20), elapsed


def test_a_gguf_without_tensors_is_not_a_model(capsys, tmp_path):
    f = _vocab_gguf(tmp_path / "vocab-only.gguf", "llama", 10, True)
    code, err = _export(capsys, f, tmp_path)
    assert code == 2 and "holds no tensors" in err and "random" not in err, err


def test_strings_and_tensors_that_run_past_the_end(tmp_path):
    from edge_sdk.exporters.gguf.header import read_header

    f = tmp_path / "liar.gguf"
    f.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 50) + b"general")
    with pytest.raises(SourceError, match="metadata key #0 needs"):
        read_header(f)
    g = _vocab_gguf(tmp_path / "ok.gguf", "llama", 10, True, tensors=True)
    data = g.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-64])
    with pytest.raises(SourceError, match="token_embd.weight ends at byte"):
        read_header(tmp_path / "cut.gguf")
    with pytest.raises(UnsupportedModelError):
        read_header(_vocab_gguf(tmp_path / "m.gguf", "mamba", 10, True), on_architecture=_refuse_all)


def _refuse_all(name):
    raise UnsupportedModelError(f"{name} is not supported")
