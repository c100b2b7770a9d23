"""Fit before load: a bundle that needs more memory than the device has available is refused, with the
figures and what would fit, before onnxruntime allocates anything (runtime/fit.py)."""
from __future__ import annotations

import copy

import pytest

import edge_sdk
from edge_sdk.errors import DeviceFitError
from edge_sdk.runtime import fit
from edge_sdk.runtime.fit import MB, Available, available_memory, check_fit, memory_need

# A SmolLM2-135M int4 manifest as far as the estimate reads it (sizes from /work/bundles/smollm2-int4).
SMOLLM2 = {
    "name": "smollm2-int4",
    "architecture": {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9},
    "graph": {"flavour": "fused", "max_context": 4096},
    "kv_cache": {"num_layers": 30, "num_kv_heads": 3, "head_dim": 64, "dtype": "float32"},
    "quantization": {"bits": 4},
    "tokenizer": {"file": "tokenizer.json", "compact_file": "tokenizer.compact.npz"},
    "chat_template": {"file": "chat_template.jinja"},
    "files": {"model.onnx": {"bytes": 197751}, "model.onnx.data": {"bytes": 111879424},
              "tokenizer.json": {"bytes": 1759662}, "tokenizer.compact.npz": {"bytes": 1156194},
              "chat_template.jinja": {"bytes": 368}},
}


def test_the_estimate_adds_up_its_parts():
    need = memory_need(SMOLLM2)
    weights = 111879424 + 197751  # graph files only: not the tokenizer or the template
    assert need.weights == int(weights * fit.AFTER_LOAD_PER_BYTE["blocks"])
    assert need.load_peak == int(weights * fit.LOAD_PEAK_PER_BYTE["blocks"])
    assert need.kv_cache == 2 * 30 * 3 * 64 * 4 * 4096  # float32 keys and values at the full context
    assert need.total == max(need.load_peak + need.tokenizer, need.weights + need.kv_cache + need.activations +
                             need.tokenizer)
    half = memory_need(SMOLLM2, context=2048)
    assert half.kv_cache * 2 == need.kv_cache and half.activations < need.activations
    small_chunk = memory_need(SMOLLM2, chunk=128)
    assert small_chunk.activations < need.activations / 3  # attention scores: chunk x context per head
    int8 = copy.deepcopy(SMOLLM2)
    int8["kv_cache"].update(format="int8", dtype="int8")
    assert memory_need(int8).kv_cache * 4 == need.kv_cache
    int4 = copy.deepcopy(SMOLLM2)
    int4["kv_cache"].update(format="int4", dtype="uint8")
    assert memory_need(int4).kv_cache * 8 == need.kv_cache


def test_refusal_names_the_figures_and_what_would_fit():
    need = memory_need(SMOLLM2)
    room = need.total - 60 * MB  # a little short at 4096 tokens
    with pytest.raises(DeviceFitError) as e:
        check_fit(SMOLLM2, available=Available(room, "MemAvailable"))
    msg = str(e.value)
    assert f"needs about {need.total / MB:.0f} MB" in msg and f"{room / MB:.0f} MB available (MemAvailable)" in msg
    assert "KV cache 180 MB at 4096 tokens" in msg and "--kv-cache int8" in msg and "--force-load" in msg
    suggested = int(msg.split("--max-context ")[1].split()[0].rstrip(")"))
    assert suggested % 256 == 0 and suggested < 4096
    assert memory_need(SMOLLM2, suggested).total <= room < memory_need(SMOLLM2, suggested + 256).total
    check_fit(SMOLLM2, available=Available(room, "MemAvailable"), force=True)  # forced: no error
    check_fit(SMOLLM2, available=Available(None, "unknown on darwin"))  # unknown: never refused
    check_fit(SMOLLM2, 1024, available=Available(room, "MemAvailable"))  # a smaller context fits


def test_available_memory_reads_meminfo_and_a_container_limit(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    1048576 kB\n")
    monkeypatch.setattr(fit, "_cgroup_room", lambda root: None)
    assert available_memory(str(meminfo)) == Available(1 << 30, "MemAvailable")
    monkeypatch.setattr(fit, "_cgroup_room", lambda root: 300 * MB)
    assert available_memory(str(meminfo)) == Available(300 * MB, "cgroup memory.max")
    monkeypatch.setattr(fit, "_cgroup_room", lambda root: 2 << 30)  # a looser limit than the machine's
    assert available_memory(str(meminfo)).source == "MemAvailable"
    meminfo.write_text("MemTotal: 100 kB\n")  # a kernel without MemAvailable
    assert available_memory(str(meminfo)).bytes is None
    monkeypatch.setattr(fit.sys, "platform", "darwin")
    assert available_memory(str(meminfo)) == Available(None, "unknown on darwin (no /proc/meminfo)")


def _tight(monkeypatch, megabytes):
    monkeypatch.setattr(fit, "available_memory", lambda: Available(int(megabytes * MB), "MemAvailable"))


def test_load_refuses_before_onnxruntime_allocates_anything(tiny_bundle, monkeypatch):
    import edge_sdk.runtime.engine as engine

    _tight(monkeypatch, 0.5)  # the tiny bundle needs ~3 MB

    def no_session(*a, **k):
        raise AssertionError("a session was created before the fit check")

    monkeypatch.setattr(engine, "make_session", no_session)
    with pytest.raises(DeviceFitError, match=r"MB available \(MemAvailable\)"):
        edge_sdk.load(tiny_bundle)
    monkeypatch.undo()
    _tight(monkeypatch, 0.5)
    model = edge_sdk.load(tiny_bundle, force=True)  # forced: loads and runs
    assert model.generate("hi", max_new_tokens=2) is not None


def test_a_smaller_context_at_load_sizes_the_cache(tiny_bundle):
    model = edge_sdk.load(tiny_bundle, max_context=64)
    full = edge_sdk.load(tiny_bundle)
    assert model.max_context == 64 and model.engine.cache.nbytes * full.max_context == full.engine.cache.nbytes * 64
    assert model.memory_need.kv_cache * full.max_context == full.memory_need.kv_cache * 64
    ids = model.encode_prompt("hello")
    import numpy as np

    np.testing.assert_array_equal(model.engine.forward(ids), full.engine.forward(ids))  # same graph, same numbers
    for bad in (8, full.max_context + 1, "64", True):
        with pytest.raises(ValueError, match="max_context"):
            edge_sdk.load(tiny_bundle, max_context=bad)


def test_cli_refuses_with_the_message_and_force_load_overrides(tiny_bundle, monkeypatch, capsys):
    from edge_sdk.cli import main

    _tight(monkeypatch, 0.5)
    assert main(["run", str(tiny_bundle), "--prompt", "hi", "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "--force-load" in err and "Traceback" not in err
    assert main(["run", str(tiny_bundle), "--prompt", "hi", "--max-new-tokens", "2", "--force-load",
                 "--max-context", "64"]) == 0
