"""Perplexity and greedy agreement on the tiny bundle, checked against transformers' logits."""
from __future__ import annotations

import math

import numpy as np
import pytest

import edge_sdk
from edge_sdk.runtime.evaluate import greedy_agreement, perplexity
from edge_sdk.runtime.eval_text import EVAL_TEXT

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


def _hf_strided_nll(hf, ids, window, stride):
    """Reference: every token's -log p from the full logits of the window that first covers it."""
    nlls = []
    done = 1
    begin = 0
    while True:
        end = min(begin + window, len(ids))
        with torch.no_grad():
            logits = hf(torch.tensor([ids[begin:end]])).logits[0].double().numpy()  # [end-begin, vocab]
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        for t in range(max(done, begin + 1), end):
            nlls.append(-logp[t - 1 - begin, ids[t]])
        done = end
        if end == len(ids):
            return np.array(nlls)
        begin += stride


@pytest.mark.parametrize("window,stride,chunk", [(64, 32, 16), (50, 50, 64), (256, 128, 64)])
def test_perplexity_equals_transformers(model, tiny_model_dir, window, stride, chunk):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    text = EVAL_TEXT[:700]
    ids = model.encode_prompt(text, raw=True)
    assert len(ids) > window  # several windows
    got = perplexity(model, text, window=window, stride=stride, chunk=chunk)
    ref = _hf_strided_nll(hf, ids, window, stride)
    assert got["tokens"] == len(ref)
    if stride < window:  # overlapping windows score every token but the first
        assert got["tokens"] == len(ids) - 1
    assert got["nll"] == pytest.approx(ref.mean(), rel=1e-5)
    assert got["ppl"] == pytest.approx(math.exp(ref.mean()), rel=1e-5)
    assert model.engine.offset == 0 and model.decoder.tokens == []


def test_perplexity_arguments(model):
    r = perplexity(model, ids=list(range(3, 40)), window=16)
    assert r["stride"] == 8 and r["tokens"] == 36 and r["ppl"] > 1
    with pytest.raises(ValueError, match="window must be in 2.."):
        perplexity(model, "hello world again", window=model.max_context + 1)
    with pytest.raises(ValueError, match="stride must be in 1..16"):
        perplexity(model, "hello world", window=16, stride=17)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        perplexity(model, ids=[5])


def test_greedy_agreement_with_itself_and_with_another_model(model, tiny_bundle):
    same = edge_sdk.load(tiny_bundle, threads=1)
    r = greedy_agreement(model, same, ["hello world", "sea haiku"], max_new_tokens=8)
    assert r["identical"] == r["total"] == 2 and r["match_fraction"] == 1.0
    assert all(p["match_prefix"] == p["tokens"] and p["same_prompt_ids"] for p in r["prompts"])
