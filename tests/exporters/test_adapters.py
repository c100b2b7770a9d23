"""LoRA adapters merged at export (--adapter), on a tiny random llama: parity with PEFT itself (not with our
own merge), every recipe and flavour, rsLoRA and per-module ranks, and the refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

import edge_sdk  # noqa: E402
from edge_sdk.errors import SourceError, UnsupportedModelError  # noqa: E402
from edge_sdk.exporters.export import export  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(base_dir, out, seed=1, **config):
    """A PEFT LoRA with random A *and* B (init_lora_weights=False: a fresh adapter's B is zero, a no-op)."""
    from edge_sdk.exporters.testing import make_tiny_lora

    return make_tiny_lora(base_dir, out, seed=seed, **config)


def peft_model(base_dir, adapter_dir):
    from transformers import AutoModelForCausalLM

    return peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir)).eval()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("base") / "tiny-llama")


@pytest.fixture(scope="module")
def adapter(base_dir, tmp_path_factory):
    return make_adapter(base_dir, tmp_path_factory.mktemp("lora") / "support")


def _logits(bundle, ids):
    model = edge_sdk.load(bundle)
    return model.engine.forward(ids, all_logits=True)


def _reference(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


IDS = list(np.random.RandomState(3).randint(3, 400, 40))


@pytest.mark.parametrize("config", [{}, {"use_rslora": True, "r": 4, "lora_alpha": 32},
                                    {"rank_pattern": {"q_proj": 2, "down_proj": 12}, "alpha_pattern": {"v_proj": 3},
                                     "target_modules": ["q_proj", "v_proj", "down_proj"]}],
                         ids=["all-targets", "rslora", "rank-and-alpha-patterns"])
def test_merged_fp32_matches_peft(base_dir, tmp_path, config):
    lora = make_adapter(base_dir, tmp_path / "lora", **config)
    manifest = export(str(base_dir), tmp_path / "out", recipe="fp32", adapter=str(lora), progress=False)
    assert manifest["validation"]["passed"] and manifest["adapter"]["merged"] is True
    ref = peft_model(base_dir, lora)
    ours = _logits(tmp_path / "out", IDS)
    theirs = _reference(ref, IDS)
    assert np.abs(ours - theirs).max() <= 1e-3
    # The adapter changed the model: the same bundle without it is far from PEFT's output.
    plain = export(str(base_dir), tmp_path / "plain", recipe="fp32", progress=False, validate=False)
    assert plain and np.abs(_logits(tmp_path / "plain", IDS) - theirs).max() > 0.1
    # Greedy tokens equal PEFT's generate.
    from edge_sdk.exporters.references import hf_greedy
    from edge_sdk.runtime.generate import generate_tokens
    from edge_sdk.runtime.sampling import make_sampler

    model = edge_sdk.load(tmp_path / "out")
    got = list(generate_tokens(model.decoder, IDS[:12], max_new_tokens=16, sampler=make_sampler(0.0), eos_ids=[2]))
    assert got == hf_greedy(ref, IDS[:12], 16, [2])


def test_manifest_records_the_adapter_and_its_hash(base_dir, adapter, tmp_path):
    import hashlib

    manifest = export(str(base_dir), tmp_path / "out", recipe="fp32", adapter=str(adapter), progress=False,
                      validate=False)
    rec = manifest["adapter"]
    h = hashlib.sha256((adapter / "adapter_config.json").read_bytes() + (adapter / "adapter_model.safetensors").read_bytes())
    assert rec["sha256"] == h.hexdigest() and rec["rank"] == 8 and rec["lora_alpha"] == 16
    assert rec["targets"] == sorted(ALL) and rec["modules"] == 2 * 7 and manifest["name"].endswith("+support")


def test_quantized_recipes_quantize_the_merged_weights(base_dir, adapter, tmp_path):
    """int8 is validated against PEFT; int4 of the merge equals int4 of PEFT's own merge_and_unload."""
    assert export(str(base_dir), tmp_path / "int8", recipe="int8", adapter=str(adapter), progress=False)["validation"]["passed"]
    merged_dir = tmp_path / "peft-merged"
    peft_model(base_dir, adapter).merge_and_unload().save_pretrained(merged_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (merged_dir / f).write_bytes((base_dir / f).read_bytes())
    export(str(base_dir), tmp_path / "ours", recipe="int4-b32", adapter=str(adapter), progress=False, validate=False)
    export(str(merged_dir), tmp_path / "theirs", recipe="int4-b32", progress=False, validate=False)
    a, b = _logits(tmp_path / "ours", IDS), _logits(tmp_path / "theirs", IDS)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cos.min() >= 0.999, cos.min()


def test_the_npu_flavour_takes_the_adapter(base_dir, adapter, tmp_path):
    manifest = export(str(base_dir), tmp_path / "npu", device="snapdragon-8-gen3", recipe="fp32", adapter=str(adapter),
                      progress=False, max_context=128)
    assert manifest["graph"]["flavour"] == "static" and manifest["validation"]["passed"]
    logits = {c["name"]: c for c in manifest["validation"]["checks"]}["logits"]["figures"]
    assert logits["max_abs_diff"] <= 1e-3  # against PEFT, on the host's CPU


def test_an_adapter_for_another_model_is_refused(base_dir, tmp_path, tmp_path_factory):
    import dataclasses

    from edge_sdk.exporters.architectures import get_module

    other_dir = tmp_path / "wider"
    args = dataclasses.replace(get_module("llama").fake(), hidden_size=96, intermediate_size=160)
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = args.to_dict()
    cfg.pop("rope_scaling", None)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg)).save_pretrained(other_dir)
    wrong = make_adapter(other_dir, tmp_path / "wrong")
    with pytest.raises(UnsupportedModelError, match="does not fit this base model"):
        export(str(base_dir), tmp_path / "out", recipe="fp32", adapter=str(wrong), progress=False)
    cfg_file = tmp_path / "named" / "adapter_config.json"
    named = make_adapter(base_dir, tmp_path / "named")
    config = json.loads(cfg_file.read_text())
    config["base_model_name_or_path"] = "Qwen/Qwen2.5-0.5B-Instruct"
    cfg_file.write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="trained on Qwen/Qwen2.5-0.5B-Instruct"):
        export(str(base_dir), tmp_path / "out", recipe="fp32", adapter=str(named), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config,message", [
    ({"target_modules": ["embed_tokens"]}, "not a LoRA A/B matrix of a linear"),
    ({"target_modules": ["lm_head"]}, "lm_head"),
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "save whole modules"),
])
def test_unsupported_adapters_are_refused_before_loading(base_dir, tmp_path, config, message):
    lora = make_adapter(base_dir, tmp_path / "lora", **config)
    with pytest.raises(UnsupportedModelError, match=message):
        export(str(base_dir), tmp_path / "out", recipe="fp32", adapter=str(lora), progress=False)
    assert not (tmp_path / "out").exists()


def test_not_an_adapter_folder(base_dir, tmp_path, capsys):
    from edge_sdk.cli import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="not a PEFT adapter folder"):
        export(str(base_dir), tmp_path / "out", adapter=str(tmp_path / "empty"), progress=False)
    code = main(["export", str(base_dir), "--output", str(tmp_path / "out"), "--adapter", str(tmp_path / "nope"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "is not a folder" in err and "Traceback" not in err
