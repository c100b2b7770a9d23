"""The memory-fit check: an export that does not fit the device's budget stops with the breakdown and what would fit."""
from __future__ import annotations

import json

import pytest

from edge_sdk.devices import load_profile
from edge_sdk.errors import DeviceFitError
from edge_sdk.exporters.architectures import get_module
from edge_sdk.exporters.fit import check_fit, estimate
from edge_sdk.exporters.recipes import get_recipe

SMOLLM2 = {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
           "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True,
           "max_position_embeddings": 8192}


def _profile(tmp_path, budget, name="tiny-phone"):
    data = load_profile("android-midrange").to_dict()
    data.update(name=name, memory_budget_mb=budget)
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(data))
    return load_profile(str(p))


def test_estimate_grows_with_context_and_recipe_bytes():
    args = get_module("llama").ModelArgs.from_config(SMOLLM2)
    a = estimate(args, get_recipe("int4-b32"), 1024)
    assert estimate(args, get_recipe("int4-b32"), 4096)["kv_cache_mb"] == 4 * a["kv_cache_mb"]
    assert estimate(args, get_recipe("fp32"), 1024)["weights_mb"] > 4 * a["weights_mb"]


def test_oversize_stops_with_breakdown_and_suggestions(tmp_path):
    args = get_module("llama").ModelArgs.from_config(SMOLLM2)
    with pytest.raises(DeviceFitError) as e:
        check_fit(args, get_recipe("fp32"), _profile(tmp_path, 400), 8192)
    msg = str(e.value)
    assert "400 MB" in msg and "weights" in msg and "KV cache at 8192 tokens" in msg
    assert "--recipe int4-b32" in msg or "--recipe int8" in msg


def test_export_refuses_before_any_work_and_writes_nothing(tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("torch")
    from edge_sdk.cli import main

    profile = _profile(tmp_path, 1)
    out = tmp_path / "out"
    code = main(["export", str(tiny_model_dir), "--output", str(out), "--device", str(tmp_path / "tiny-phone.json"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit" in err and "1 MB" in err
    assert not out.exists()
    assert profile.memory_budget_mb == 1
