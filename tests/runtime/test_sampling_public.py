"""Sampling options through the public path (Model.generate), checked against transformers' warpers.

A sampler's random draws cannot be compared token for token with transformers' (different RNGs), so
each option is checked on its distribution: with the option on, every draw of the first token lies in
the set transformers' warper keeps; with it off, draws land outside that set (so the check can fail).
"""
from __future__ import annotations

import numpy as np
import pytest

import edge_sdk

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PROMPT = "paris france capital"
DRAWS = 60


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


@pytest.fixture(scope="module")
def first_logits(model):
    ids = model.encode_prompt(PROMPT)
    model.decoder.reset()
    logits, _ = model.decoder.prefill(ids)
    model.decoder.reset()
    return np.asarray(logits, np.float32), ids


def _kept(warper, logits) -> set[int]:
    """Ids transformers' warper keeps (not -inf)."""
    out = warper(torch.zeros(1, 1, dtype=torch.long), torch.tensor(logits)[None])[0].numpy()
    return set(np.flatnonzero(np.isfinite(out)).tolist())


def _text(model, token: int) -> str:
    """What a one-token reply shows (a reply cut after an unfinished character drops it)."""
    from edge_sdk.runtime.tokenizer import StreamingDetokenizer

    d = StreamingDetokenizer(model.tokenizer, skip_special_tokens=True)
    return d.add(token) + d.flush(drop_incomplete=True)


def _texts(model, ids) -> set[str]:
    return {_text(model, i) for i in ids}


def _draw_texts(model, **kw) -> list[str]:
    return [model.generate(PROMPT, max_new_tokens=1, seed=s, **kw) for s in range(DRAWS)]


@pytest.mark.parametrize("option, warper", [
    ({"top_k": 3}, "TopKLogitsWarper(3)"),
    ({"top_p": 0.3}, "TopPLogitsWarper(0.3)"),
    ({"min_p": 0.3}, "MinPLogitsWarper(0.3)"),
])
def test_filters_keep_what_transformers_keeps(model, first_logits, option, warper):
    import transformers

    logits, _ = first_logits
    kept = _kept(eval(f"transformers.{warper}"), logits)  # noqa: S307 - a constructor from the table above
    assert 1 <= len(kept) < 50  # the filter really filters here
    allowed = _texts(model, kept)
    drawn = _draw_texts(model, temperature=1.0, **option)
    assert set(drawn) <= allowed, set(drawn) - allowed
    unfiltered = _draw_texts(model, temperature=1.0)
    assert not set(unfiltered) <= allowed  # without the option, draws land outside: this check can fail


def test_temperature_shapes_the_distribution(model, first_logits):
    logits, _ = first_logits
    top = _text(model, int(np.argmax(logits)))
    first, second = np.sort(logits)[-2:][::-1]
    cold = max(float(first - second) / 30, 1e-4)  # the runner-up is e^-30 times less likely
    assert set(_draw_texts(model, temperature=cold)) == {top}  # nearly greedy
    assert len(set(_draw_texts(model, temperature=1.5))) > 3  # a hot sampler spreads out


def test_seeds_reproduce_and_differ(model):
    a = model.generate(PROMPT, max_new_tokens=8, temperature=1.0, seed=11)
    assert model.generate(PROMPT, max_new_tokens=8, temperature=1.0, seed=11) == a
    assert len({model.generate(PROMPT, max_new_tokens=8, temperature=1.0, seed=s) for s in range(6)}) > 1


def test_repetition_penalty_changes_the_greedy_choice_as_transformers_does(model):
    """A prompt where transformers' RepetitionPenaltyLogitsProcessor changes the argmax of the first token:
    greedy generate() with the penalty must pick that token."""
    from transformers import RepetitionPenaltyLogitsProcessor

    penalty = RepetitionPenaltyLogitsProcessor(3.0)
    checked = 0
    for prompt in ["paris france capital", "the sea the sea the sea", "hello world edge device", "1 2 3 4 5 6",
                   "token cache token cache", "blue light water blue", "phone model phone model"]:
        ids = model.encode_prompt(prompt)
        model.decoder.reset()
        logits, _ = model.decoder.prefill(ids)
        model.decoder.reset()
        ref = penalty(torch.tensor([ids]), torch.tensor(np.asarray(logits, np.float32))[None])[0].numpy()
        want, plain = int(np.argmax(ref)), int(np.argmax(logits))
        if want == plain:
            continue
        got = model.generate(prompt, max_new_tokens=1, repetition_penalty=3.0)
        assert got == _text(model, want), prompt
        assert got != model.generate(prompt, max_new_tokens=1, repetition_penalty=1.0)  # plain greedy
        checked += 1
    assert checked >= 1, "no prompt where the penalty changes the first token: pick others"
