"""Sampling defaults come from the model's own generation_config.json, read as transformers reads it, into the
manifest and into what generate() uses; a model without one gets edge-sdk's documented defaults."""
from __future__ import annotations

import json

import pytest

from edge_sdk.errors import SourceError
from edge_sdk.exporters.generation import generation_section
from edge_sdk.runtime.generation_defaults import GENERATION_DEFAULTS

transformers = pytest.importorskip("transformers")

CONFIGS = [  # what model repositories carry (Qwen2.5, Llama 3.2, Gemma 3 style) and partial ones
    {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05},
    {"do_sample": True, "temperature": 0.6, "top_p": 0.9},
    {"do_sample": True, "top_k": 64, "top_p": 0.95},
    {"do_sample": True},
    {"do_sample": False, "temperature": 0.3},
    {"repetition_penalty": 1.2},
    {"temperature": 0.9, "top_k": None},
    {"do_sample": True, "min_p": 0.05, "top_k": 0},
]
IDS_ONLY = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}


def _write(folder, config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "generation_config.json").write_text(json.dumps({**IDS_ONLY, **config}))
    return folder


def _hf(config, key):
    """What transformers' generate() uses for `key`: the file's value, else its own default (transformers 5
    leaves unset fields None in the config and fills them in at generate())."""
    value = getattr(config, key)
    if value is None and hasattr(config, "_get_default_generation_params"):
        value = config._get_default_generation_params().get(key)
    return value


@pytest.mark.parametrize("config", CONFIGS, ids=[json.dumps(c) for c in CONFIGS])
def test_the_section_is_what_transformers_would_sample_with(tmp_path, config):
    folder = _write(tmp_path / "m", config)
    ours = generation_section(folder)
    hf = transformers.GenerationConfig.from_pretrained(folder)  # the reference reader
    assert ours["temperature"] == (_hf(hf, "temperature") if _hf(hf, "do_sample") else 0.0)
    assert ours["top_k"] == (_hf(hf, "top_k") or 0)
    assert ours["top_p"] == (1.0 if _hf(hf, "top_p") is None else _hf(hf, "top_p"))
    assert ours["min_p"] == (_hf(hf, "min_p") or 0.0)
    assert ours["repetition_penalty"] == (1.0 if _hf(hf, "repetition_penalty") is None else _hf(hf, "repetition_penalty"))
    assert ours["source"].startswith("the model's generation_config.json")


def test_no_sampling_choice_gets_edge_sdk_defaults(tmp_path):
    want = {k: GENERATION_DEFAULTS[k] for k in ("max_new_tokens", "temperature", "top_k", "top_p", "min_p",
                                                "repetition_penalty")}
    ids_only = generation_section(_write(tmp_path / "ids", {}))
    assert {k: v for k, v in ids_only.items() if k != "source"} == want
    assert "sets no sampling field" in ids_only["source"]
    none = generation_section(None)  # a GGUF
    assert {k: v for k, v in none.items() if k != "source"} == want and "no generation_config.json" in none["source"]
    assert GENERATION_DEFAULTS["temperature"] == 0.0 and GENERATION_DEFAULTS["repetition_penalty"] > 1.0
    assert generation_section(_write(tmp_path / "n", {"max_new_tokens": 40}))["max_new_tokens"] == 40
    assert "no_repeat_ngram_size" in generation_section(_write(tmp_path / "ng", {"do_sample": True,
                                                                                 "no_repeat_ngram_size": 3}))["source"]


@pytest.mark.parametrize("config, field", [
    ({"do_sample": True, "temperature": "hot"}, "temperature"), ({"top_p": 2.0}, "top_p"),
    ({"top_k": 1.5}, "top_k"), ({"repetition_penalty": 0}, "repetition_penalty"), ({"do_sample": "yes"}, "do_sample"),
    ({"temperature": float("nan")}, "temperature"), ({"max_new_tokens": -1}, "max_new_tokens"),
])
def test_a_malformed_generation_config_is_a_clear_error(tmp_path, config, field):
    with pytest.raises(SourceError, match=field):
        generation_section(_write(tmp_path / "bad", config))
    (tmp_path / "bad" / "generation_config.json").write_text("[1, 2")
    with pytest.raises(SourceError, match="JSON"):
        generation_section(tmp_path / "bad")


# --- the round trip through export, the manifest and generate() -----------------------------------

torch = pytest.importorskip("torch")


def _export(tmp_path, config):
    import edge_sdk
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.testing import make_tiny_model_dir

    src = make_tiny_model_dir(tmp_path / "src", "llama")
    _write(src, config)
    export(str(src), tmp_path / "bundle", recipe="fp32", max_context=128, progress=False)
    return src, edge_sdk.load(tmp_path / "bundle", threads=1)


def test_greedy_with_a_penalty_round_trips_and_matches_transformers_generate(tmp_path):
    """The folder says greedy with repetition_penalty 1.3 and 12 new tokens: transformers' generate() with no
    arguments follows it, and so must ours (export validation still compares plain greedy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, model = _export(tmp_path, {"do_sample": False, "repetition_penalty": 1.3, "max_new_tokens": 12})
    gen = model.manifest["generation"]
    assert (gen["temperature"], gen["repetition_penalty"], gen["max_new_tokens"]) == (0.0, 1.3, 12)
    assert model.generation_defaults["repetition_penalty"] == 1.3
    hf, tok = AutoModelForCausalLM.from_pretrained(src).eval(), AutoTokenizer.from_pretrained(src)
    msgs = [{"role": "user", "content": "the the the quick brown fox"}]
    ids = model.encode_prompt(msgs)
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          eos_token_id=model.eos_token_ids, pad_token_id=model.eos_token_ids[0])[0, len(ids):].tolist()
    want = tok.decode(out, skip_special_tokens=True)
    assert len(out) >= 12 or out[-1] in model.eos_token_ids
    assert model.generate(msgs) == want
    assert model.generate(msgs, repetition_penalty=1.0) != want  # the penalty is what made the difference


def test_sampling_defaults_round_trip_into_generate(tmp_path):
    _, model = _export(tmp_path, {"do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.9})
    d = model.generation_defaults
    assert (d["temperature"], d["top_k"], d["top_p"], d["repetition_penalty"]) == (0.6, 20, 0.9, 1.0)
    explicit = dict(temperature=0.6, top_k=20, top_p=0.9, repetition_penalty=1.0)
    for seed in range(3):
        assert model.generate("hello world", seed=seed) == model.generate("hello world", seed=seed, **explicit)
    edge = {k: GENERATION_DEFAULTS[k] for k in ("temperature", "top_k", "top_p", "repetition_penalty")}
    assert any(model.generate("hello world", seed=s) != model.generate("hello world", seed=s, **edge) for s in range(3))
