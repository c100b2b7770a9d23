"""The quantized KV cache on the real SmolLM2-135M (int4-b32 weights): int8 and int4 caches made with the
exporter's calibration and rewrite from the float-cache bundle, against that bundle over the same weights.

Figures at longer contexts (2k, 4k) and memory/speed are benchmarks: benchmarks/kv_cache.py, docs/benchmarks.md."""
from __future__ import annotations

import numpy as np
import pytest

import edge_sdk
from edge_sdk.exporters.graph.kv_quant import calibration_sequences, requantize_bundle
from edge_sdk.exporters.validate import CHAT_PROMPTS
from edge_sdk.runtime.eval_text import EVAL_TEXT

pytestmark = pytest.mark.e2e

GREEDY_PROMPTS = CHAT_PROMPTS + ["Name three uses of a paperclip.", "What does a compiler do?",
                                 "Give me a short tip for sleeping better."]


@pytest.fixture(scope="module")
def models(smollm2_bundle, tmp_path_factory):
    """{"float": the bundle, "int8": its int8-cache copy, "int4": its int4-cache copy}, loaded."""
    base = edge_sdk.load(smollm2_bundle)
    seqs = calibration_sequences(base.encode_prompt)
    out = {"float": base}
    for fmt in ("int8", "int4"):
        dst = tmp_path_factory.mktemp(f"kv-{fmt}") / "bundle"
        requantize_bundle(smollm2_bundle, dst, fmt, seqs)
        out[fmt] = edge_sdk.load(dst)
    return out


def _teacher_forced(model, ids, rows=256):
    """Per position: the logits' argmax and the next token's negative log-likelihood, and the logits."""
    model.decoder.reset()
    logits = np.concatenate([model.engine.forward(ids[i:i + rows], all_logits=True)
                             for i in range(0, len(ids), rows)])
    model.decoder.reset()
    z = logits[:-1].astype(np.float64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    nll = lse - z[np.arange(len(ids) - 1), ids[1:]]
    return logits, nll


@pytest.fixture(scope="module")
def scored(models):
    """EVAL_TEXT (held out: the calibration never ran it) filling most of the 1024-token context."""
    ids = models["float"].encode_prompt(EVAL_TEXT, raw=True)
    ids = (ids * 2)[:models["float"].max_context - 24]
    return {fmt: _teacher_forced(m, ids) for fmt, m in models.items()}


def _figures(scored, fmt):
    (ref, ref_nll), (got, nll) = scored["float"], scored[fmt]
    err = np.abs(got - ref)
    return {"top1": float((got.argmax(-1) == ref.argmax(-1)).mean()),
            "ppl_increase": float(np.exp(nll.mean() - ref_nll.mean()) - 1),
            "max_abs": float(err.max()), "mean_abs": float(err.mean()),
            "p99_row_max": float(np.quantile(err.max(-1), 0.99))}


def test_int8_cache_keeps_the_float_cache_quality_over_a_full_context(scored):
    """Measured (docs/benchmarks.md, the KV-cache table): top-1 93.6 %, perplexity -0.2 %, mean |logit error|
    0.29, 99th percentile of a position's largest error 3.1. The issue's bar is +0.5 % perplexity."""
    f = _figures(scored, "int8")
    assert f["ppl_increase"] <= 0.005, f
    assert f["top1"] >= 0.90 and f["mean_abs"] <= 0.5 and f["p99_row_max"] <= 5.0, f


def test_int4_cache_costs_more_than_int8_and_is_measured_so(scored):
    """int4 (16 levels under a static per-channel scale) is measured at +9 % perplexity and 76 % top-1: worse
    than int8 on every figure, which is why no profile defaults to it and export validation refuses it on
    this model. Still a cache of the same text: far from a broken one (a random cache is ~0 % top-1)."""
    f4, f8 = _figures(scored, "int4"), _figures(scored, "int8")
    assert f4["ppl_increase"] > max(f8["ppl_increase"], 0.01) and f4["top1"] < f8["top1"], (f4, f8)
    assert f4["mean_abs"] > f8["mean_abs"] and f4["p99_row_max"] > f8["p99_row_max"], (f4, f8)
    assert f4["ppl_increase"] <= 0.25 and f4["top1"] >= 0.65, f4


def test_greedy_answers_follow_the_float_cache(models):
    """Greedy text parts from the float cache's at its near-ties, so agreement is the share of each answer
    that matches before they part. Measured over these six prompts: int8 36 % on average (one answer
    identical), int4 2 % (none)."""
    want = {p: models["float"].generate(p, max_new_tokens=48, temperature=0.0) for p in GREEDY_PROMPTS}
    share = {}
    for fmt in ("int8", "int4"):
        got = {p: models[fmt].generate(p, max_new_tokens=48, temperature=0.0) for p in GREEDY_PROMPTS}
        share[fmt] = np.mean([len(_common(got[p], want[p])) / max(1, len(want[p])) for p in GREEDY_PROMPTS])
    assert share["int8"] >= 0.2 and share["int4"] < share["int8"], share


def _common(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
