"""OpenAI's frequency_penalty and presence_penalty, checked against their documented definition written out here
independently (https://platform.openai.com/docs/advanced-usage, "Frequency and presence penalties"):

    mu[j] -> mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence

where c[j] is how often token j was sampled before the current position (the reply's own tokens, not the prompt).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import edge_sdk
from edge_sdk.runtime import sampling as S


def reference(logits, sampled, frequency, presence):
    """The documented formula, one token at a time in plain Python."""
    c = Counter(int(t) for t in sampled)
    return np.array([mu - c[j] * frequency - float(c[j] > 0) * presence for j, mu in enumerate(logits.tolist())])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("frequency, presence", [(0.5, 0.0), (0.0, 1.5), (2.0, -2.0), (-1.0, 0.7), (0.0, 0.0)])
def test_the_penalties_are_openais_formula(seed, frequency, presence):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=50).astype(np.float32) * 4
    sampled = rng.integers(0, 50, size=int(rng.integers(0, 40))).tolist()
    got = S.apply_frequency_presence_penalties(logits, sampled, frequency, presence)
    np.testing.assert_allclose(got, reference(logits, sampled, frequency, presence), rtol=0, atol=1e-5)
    assert got is not logits and np.array_equal(logits, logits.copy())  # the input is not modified


def test_the_processor_counts_only_the_reply_and_runs_after_the_repetition_penalty():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=30).astype(np.float32)
    prompt, reply = [3, 3, 4, 7], [4, 9, 9, 9]
    process = S.make_logits_processor(1.3, 0.6, 0.4, prompt_tokens=len(prompt))
    want = reference(S.apply_repetition_penalty(logits, prompt + reply, 1.3), reply, 0.6, 0.4)
    np.testing.assert_allclose(process(logits, prompt + reply), want, atol=1e-5)
    # token 3 is only in the prompt: not penalised by frequency/presence
    only = S.make_logits_processor(frequency_penalty=1.0, prompt_tokens=len(prompt))
    assert only(logits, prompt)[3] == logits[3] and only(logits, prompt + [3])[3] == pytest.approx(logits[3] - 1)
    assert S.make_logits_processor(1.0, 0.0, 0.0) is None


@pytest.mark.parametrize("name", ["frequency_penalty", "presence_penalty"])
@pytest.mark.parametrize("value", [-2.5, 2.01, float("nan"), float("inf"), True, "1"])
def test_out_of_range_penalties_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        S.validate(**{name: value})
    with pytest.raises(ValueError, match=name):
        S.make_logits_processor(**{name: value})


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


class Recorder:
    """A `confidence=` observer: sees the model's own logits and the token chosen, at every step."""

    def __init__(self):
        self.steps = []

    def observe(self, logits, token):
        self.steps.append((np.array(logits, dtype=np.float64), int(token)))


@pytest.mark.parametrize("frequency, presence", [(1.5, 0.0), (0.0, 2.0), (0.8, 0.8), (-2.0, 0.0)])
def test_greedy_generation_follows_the_formula(model, frequency, presence):
    """Each greedy choice with penalties is the argmax of the documented formula applied to the model's own logits
    with the counts of the tokens generated before it."""
    ids = model.encode_prompt("paris france capital")
    rec = Recorder()
    text = "".join(model.stream_ids(ids, confidence=rec, max_new_tokens=40, frequency_penalty=frequency,
                                    presence_penalty=presence))
    assert len(rec.steps) >= 20
    sampled: list[int] = []
    for logits, token in rec.steps:
        assert token == int(np.argmax(reference(logits, sampled, frequency, presence)))
        sampled.append(token)
    # the keyword arguments reach generate() too, and the penalties change this reply (the check above can fail)
    assert model.generate("paris france capital", max_new_tokens=40, frequency_penalty=frequency,
                          presence_penalty=presence) == text
    assert model.generate("paris france capital", max_new_tokens=40) != text


def test_generate_refuses_a_penalty_out_of_range(model):
    with pytest.raises(ValueError, match="presence_penalty"):
        model.generate("hi", max_new_tokens=2, presence_penalty=3)
    with pytest.raises(ValueError, match="speculative"):
        model.generate("hi", max_new_tokens=2, speculative=True, frequency_penalty=1)
