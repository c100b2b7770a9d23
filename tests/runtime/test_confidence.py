"""The hybrid router's confidence score: the probability the model itself gave each chosen token, whatever
the sampling settings. Checked against log-softmax from torch over logits recomputed token by token."""
from __future__ import annotations

import math

import numpy as np
import pytest

import edge_sdk
from edge_sdk.runtime.hybrid import Confidence

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


def _reference_logp(model, prompt_ids, tokens):
    """log p(token) from the model's raw logits at each step, recomputed from scratch, by torch."""
    decoder = model.decoder
    decoder.reset()
    logits, _ = decoder.prefill(prompt_ids)
    out = []
    for token in tokens:
        out.append(float(torch.log_softmax(torch.from_numpy(np.asarray(logits, np.float64)), -1)[token]))
        logits = decoder.step(token)
    decoder.reset()
    return out


@pytest.mark.parametrize("settings", [
    {},                                                           # greedy: what the threshold was calibrated on
    {"repetition_penalty": 1.3},                                  # the penalty changes the choice, not the score
    {"temperature": 0.9, "top_p": 0.9, "seed": 7},                # nor do temperature and top-p
])
def test_the_score_is_the_models_own_probability_of_each_chosen_token(model, settings):
    prompt = model.encode_prompt("the sea and the sky")
    confidence, tokens = Confidence(), []

    def keep(logits, token):  # the tokens the sampler chose (end-of-sequence included)
        tokens.append(token)
        original(logits, token)

    original, confidence.observe = confidence.observe, keep
    "".join(model.stream_ids(prompt, confidence=confidence, max_new_tokens=12, **settings))
    want = _reference_logp(model, prompt, tokens)
    assert len(confidence.logp) == len(tokens) > 0
    np.testing.assert_allclose(confidence.logp, want, atol=1e-4)
    assert confidence.score == pytest.approx(math.exp(sum(want) / len(want)), rel=1e-4)


def test_signals_on_known_distributions():
    c = Confidence(detail=True)
    c.observe(np.log(np.array([0.5, 0.25, 0.25])), 0)
    c.observe(np.log(np.array([0.1, 0.6, 0.3])), 2)
    assert c.score == pytest.approx(math.sqrt(0.5 * 0.3))
    s = c.signals()
    assert s["min_p"] == pytest.approx(0.3) and s["mean_margin"] == pytest.approx((0.25 + 0.3) / 2)
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    assert s["mean_entropy"] == pytest.approx((h([0.5, 0.25, 0.25]) + h([0.1, 0.6, 0.3])) / 2)
    assert Confidence().score == 1.0  # an empty answer was never unsure
