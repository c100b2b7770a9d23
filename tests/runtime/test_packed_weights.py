"""The packed-weights cache (runtime/packed.py): the first load writes onnxruntime's packed MatMulNBits weights
to a file, later loads map them; logits are bit-identical either way; a changed bundle or onnxruntime gets a new
entry, a corrupt entry is rebuilt, an unwritable cache falls back to packing on the heap, and nothing is ever
written outside the cache folder (a bundle is untrusted and may be read-only).

On the real models the anonymous memory falls by ~100 MB (benchmarks/packed_weights.py, docs/benchmarks.md);
on a tiny model that is below the noise of RssAnon, so what is checked here is that the packed blobs really
come from the file: the process maps more bytes of the entry's data file than the whole bundle's weights.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import edge_sdk
from edge_sdk.runtime import packed
from edge_sdk.runtime.bundle import read_manifest
from edge_sdk.runtime.engine import FusedEngine
from edge_sdk.runtime.memory import file_mappings
from edge_sdk.runtime.providers import SessionConfig

IDS = [3, 17, 5, 42, 9, 11, 2, 30, 7, 8, 21]


@pytest.fixture(scope="module")
def int4_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.testing import make_tiny_model_dir

    d = tmp_path_factory.mktemp("tiny-int4-packed")
    src = make_tiny_model_dir(d / "src", "llama")
    export(str(src), d / "bundle", recipe="int4-b32", max_context=256, progress=False, validate=False)
    return d / "bundle"


def open_engine(bundle: Path, cache) -> tuple[FusedEngine, SessionConfig]:
    config = SessionConfig(threads=1, packed_cache=str(cache), release_pages=False)
    return FusedEngine(read_manifest(bundle), bundle, config), config


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def mapped_bytes(folder: Path, name: str) -> int:
    return sum(m["end"] - m["start"] for m in file_mappings(folder) if m["path"].endswith(name))


def test_second_load_maps_the_packed_file_and_logits_are_identical(int4_bundle, tmp_path):
    cache = tmp_path / "cache"
    before = listing(int4_bundle)
    heap, hc = open_engine(int4_bundle, "off")
    assert not hc.packed.cached and "off" in hc.packed.reason
    weights = (int4_bundle / "model.onnx.data").stat().st_size
    assert mapped_bytes(int4_bundle, "model.onnx.data") <= weights  # heap: only unpacked weights stay mapped
    want = heap.forward(IDS, all_logits=True)
    del heap

    first, fc = open_engine(int4_bundle, cache)
    assert fc.packed.cached and fc.packed.built
    assert np.array_equal(first.forward(IDS, all_logits=True), want)
    del first

    second, sc = open_engine(int4_bundle, cache)
    assert sc.packed.cached and not sc.packed.built, "the second load must reuse the entry, not pack again"
    entry = sc.packed.path.parent
    assert entry.parent == cache and sc.packed.path.name == packed.GRAPH
    # The packed blobs are read from the file: more of it is mapped than the bundle's weights amount to.
    assert mapped_bytes(entry, packed.DATA) > weights
    got = second.forward(IDS, all_logits=True)
    assert np.array_equal(got, want)
    step = int(np.argmax(got[-1] if got.ndim == 2 else got[0, -1]))
    assert np.isfinite(second.forward([step])).all()
    assert listing(int4_bundle) == before, "nothing may be written into the bundle's folder"
    assert sorted(p.name for p in cache.iterdir()) == [entry.name]


def test_the_public_load_takes_the_cache_from_its_option_or_the_environment(int4_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv(packed.ENV, str(tmp_path / "c"))
    model = edge_sdk.load(int4_bundle, threads=1)
    assert model.engine.session  # opened
    entries = list((tmp_path / "c").iterdir())
    assert len(entries) == 1 and (entries[0] / packed.STAMP).exists()
    monkeypatch.setenv(packed.ENV, "off")
    assert packed.cache_root() is None
    model = edge_sdk.load(int4_bundle, threads=1)
    assert model.engine.session and len(list((tmp_path / "c").iterdir())) == 1  # off: nothing more written
    # The API's own option wins over the environment.
    model = edge_sdk.load(int4_bundle, threads=1, packed_cache=tmp_path / "api")
    assert len(list((tmp_path / "api").iterdir())) == 1


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "drop the stamp"])
def test_a_corrupt_entry_is_detected_and_rebuilt(int4_bundle, tmp_path, damage):
    cache = tmp_path / "cache"
    engine, config = open_engine(int4_bundle, cache)
    want = engine.forward(IDS, all_logits=True)
    del engine
    entry = config.packed.path.parent
    data = entry / packed.DATA
    if damage == "flip a byte":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x55
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        with open(data, "r+b") as f:
            f.truncate(data.stat().st_size // 2)
    else:
        (entry / packed.STAMP).unlink()
    engine, config = open_engine(int4_bundle, cache)
    assert config.packed.cached and config.packed.built, "a damaged entry must be rebuilt, not loaded"
    assert np.array_equal(engine.forward(IDS, all_logits=True), want)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "no build folder may be left behind"


def test_the_key_changes_with_the_bundle_the_onnxruntime_build_and_the_session_entries(int4_bundle, monkeypatch):
    manifest = read_manifest(int4_bundle)
    base = packed.cache_key(manifest, "model.onnx", {})
    changed = json.loads(json.dumps(manifest))
    changed["files"]["model.onnx.data"]["sha256"] = "0" * 64
    assert packed.cache_key(changed, "model.onnx", {}) != base
    assert packed.cache_key(manifest, "model.onnx", {"mlas.disable_kleidiai": "1"}) != base
    monkeypatch.setattr(packed.ort, "__version__", "9.99.0")
    assert packed.cache_key(manifest, "model.onnx", {}) != base


def test_a_new_onnxruntime_never_loads_the_old_entry(int4_bundle, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    open_engine(int4_bundle, cache)
    monkeypatch.setattr(packed.ort, "__version__", "9.99.0")
    _, config = open_engine(int4_bundle, cache)
    assert config.packed.built and len(list(cache.iterdir())) == 2


def test_an_unwritable_cache_loads_as_before_with_the_reason(int4_bundle, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # mkdir under a file fails even for root, as a read-only folder would for a user
    engine, config = open_engine(int4_bundle, blocker / "cache")
    assert not config.packed.cached and config.packed.path == int4_bundle / "model.onnx"
    assert str(blocker) in config.packed.reason
    heap, _ = open_engine(int4_bundle, "off")
    assert np.array_equal(engine.forward(IDS, all_logits=True), heap.forward(IDS, all_logits=True))


def test_a_read_only_bundle_folder_still_gets_its_packed_weights(int4_bundle, tmp_path):
    """The cache never lives in the bundle: a read-only bundle (an app's assets, a store) is packed all the same."""
    mode = os.stat(int4_bundle).st_mode
    os.chmod(int4_bundle, 0o555)
    try:
        _, config = open_engine(int4_bundle, tmp_path / "cache")
    finally:
        os.chmod(int4_bundle, mode)
    assert config.packed.cached and tmp_path / "cache" in config.packed.path.parents


def test_the_cache_keeps_at_most_max_entries_and_sweeps_dead_builds(int4_bundle, tmp_path):
    from edge_sdk.runtime.providers import _options

    root = tmp_path / "cache"
    root.mkdir()
    dead = root / (packed._TMP_PREFIX + "killed")
    dead.mkdir()
    os.utime(dead, (0, 0))
    manifest = read_manifest(int4_bundle)
    source = int4_bundle / "model.onnx"
    made = []
    for i in range(4):  # four keys (the session entries differ), room for two
        entries = {"session.intra_op.spin_duration_us": str(i)}
        g = packed.packed_graph(source, manifest, entries, lambda: _options(SessionConfig(threads=1)), root,
                                max_entries=2)
        assert g.cached and g.built
        made.append(g.path.parent.name)
    assert sorted(p.name for p in root.iterdir()) == sorted(made[-2:])


def test_graphs_without_packed_weights_are_not_cached():
    assert not packed.applies({"graph": {"flavour": "fused"}, "quantization": {"recipe": "fp32"}},
                              ["CPUExecutionProvider"])
    assert not packed.applies({"graph": {"flavour": "static"}, "quantization": {"bits": 8}}, ["CPUExecutionProvider"])
    assert not packed.applies({"graph": {"flavour": "fused"}, "quantization": {"bits": 4}},
                              ["QNNExecutionProvider", "CPUExecutionProvider"])
    assert packed.applies({"graph": {"flavour": "fused"}, "quantization": {"bits": 4}}, ["CPUExecutionProvider"])
