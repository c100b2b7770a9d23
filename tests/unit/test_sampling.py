"""Sampling: hand-computed examples, argument errors, reproducibility, and parity with transformers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge_sdk.runtime import sampling as S

NEG = -np.inf


def f32(*xs):
    return np.array(xs, dtype=np.float32)


# --- validate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=float("inf")), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=-1), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(min_p=1.0), "min_p"),
    (dict(min_p=-0.1), "min_p"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(repetition_penalty=-1.0), "repetition_penalty"),
])
def test_validate_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        S.validate(**kwargs)


def test_validate_accepts_defaults_and_edges():
    S.validate(0.0, 0, 1.0, 0.0, 1.0)
    S.validate(0.7, 50, 0.01, 0.99, 1.3)


def test_make_sampler_validates():
    with pytest.raises(ValueError, match="top_p"):
        S.make_sampler(temperature=1.0, top_p=0)
    with pytest.raises(ValueError, match="repetition_penalty"):
        S.make_logits_processor(0)


# --- single functions, by hand -----------------------------------------------------------------

def test_repetition_penalty_divides_positive_multiplies_negative():
    logits = f32(2.0, -2.0, 1.0, 4.0)
    out = S.apply_repetition_penalty(logits, [0, 1, 1, 0], 2.0)  # duplicates count once
    np.testing.assert_allclose(out, f32(1.0, -4.0, 1.0, 4.0))
    np.testing.assert_allclose(logits, f32(2.0, -2.0, 1.0, 4.0))  # input untouched


def test_repetition_penalty_no_seen_ids():
    np.testing.assert_array_equal(S.apply_repetition_penalty(f32(1, 2), [], 1.5), f32(1, 2))


def test_logits_processor_none_when_off():
    assert S.make_logits_processor(1.0) is None
    proc = S.make_logits_processor(2.0)
    np.testing.assert_allclose(proc(f32(2.0, 3.0), [1]), f32(2.0, 1.5))


def test_top_k_keeps_k_largest_and_ties():
    out = S.top_k_mask(f32(1, 5, 3, 4), 2)
    np.testing.assert_array_equal(out, f32(NEG, 5, NEG, 4))
    # transformers keeps every token tied with the k-th
    np.testing.assert_array_equal(S.top_k_mask(f32(1, 3, 3, 4), 2), f32(NEG, 3, 3, 4))
    np.testing.assert_array_equal(S.top_k_mask(f32(1, 2), 0), f32(1, 2))
    np.testing.assert_array_equal(S.top_k_mask(f32(1, 2), 10), f32(1, 2))


def test_top_p_by_hand():
    # probabilities 0.1, 0.2, 0.3, 0.4 (log-probs as logits)
    logits = np.log(f32(0.1, 0.2, 0.3, 0.4))
    # ascending cum: 0.1, 0.3, 0.6, 1.0; remove cum <= 1 - p
    out = S.top_p_mask(logits, 0.7)  # 1-p = 0.3 → drop 0.1 and 0.2 (cum 0.3 <= 0.3 up to rounding)
    assert np.isneginf(out[0])
    np.testing.assert_allclose(out[2:], logits[2:])
    out = S.top_p_mask(logits, 0.35)  # drop everything with cum <= 0.65 → keep 0.4 only
    assert np.isneginf(out[:3]).all() and out[3] == logits[3]
    out = S.top_p_mask(logits, 1e-9)  # always keeps the top token
    assert np.isfinite(out).sum() == 1 and out[3] == logits[3]


def test_min_p_by_hand():
    logits = np.log(f32(0.5, 0.3, 0.15, 0.05))
    out = S.min_p_mask(logits, 0.5)  # threshold 0.25 → keep 0.5, 0.3
    assert np.isfinite(out[:2]).all() and np.isneginf(out[2:]).all()
    out = S.min_p_mask(logits, 0.0)
    np.testing.assert_array_equal(out, logits)
    out = S.min_p_mask(f32(0, 0, 0), 0.99)  # all equal: nothing falls below
    assert np.isfinite(out).all()


def test_temperature():
    np.testing.assert_allclose(S.apply_temperature(f32(1, -2), 0.5), f32(2, -4))


# --- samplers --------------------------------------------------------------------------------

def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    sample = S.make_sampler(temperature=0.0, top_k=3, top_p=0.5, seed=1)  # others ignored
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert sample(logits) == int(np.argmax(logits))


def test_seeded_runs_reproduce():
    logits = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    kw = dict(temperature=0.8, top_k=100, top_p=0.9, min_p=0.01)
    a = S.make_sampler(seed=123, **kw)
    b = S.make_sampler(seed=123, **kw)
    run_a = [a(logits) for _ in range(50)]
    assert run_a == [b(logits) for _ in range(50)]
    assert len(set(run_a)) > 1  # it does sample
    c = S.make_sampler(seed=124, **kw)
    assert run_a != [c(logits) for _ in range(50)]


def test_sampler_accepts_generator():
    logits = f32(0, 0, 0, 0)
    rng1, rng2 = np.random.default_rng(7), np.random.default_rng(7)
    s1, s2 = S.make_sampler(temperature=1.0, seed=rng1), S.make_sampler(temperature=1.0, seed=rng2)
    assert [s1(logits) for _ in range(20)] == [s2(logits) for _ in range(20)]


def test_sampler_never_picks_filtered_tokens():
    logits = f32(10, 9, 8, -1, -2, -3)
    sample = S.make_sampler(temperature=5.0, top_k=2, seed=0)
    assert {sample(logits) for _ in range(200)} == {0, 1}


def test_sampler_frequencies_follow_softmax():
    probs = np.array([0.5, 0.3, 0.2])
    sample = S.make_sampler(temperature=1.0, seed=0)
    logits = np.log(probs).astype(np.float32)
    counts = np.bincount([sample(logits) for _ in range(20000)], minlength=3) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.015)


# --- parity with transformers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from transformers.generation import logits_process as lp

    return torch, lp


def _random_logits(seed, vocab=4096):
    return (np.random.default_rng(seed).standard_normal(vocab) * 3).astype(np.float32)


def _hf(torch, warper, logits, input_ids=None):
    ids = torch.tensor([input_ids or [0]], dtype=torch.long)
    return warper(ids, torch.from_numpy(logits.copy())[None])[0].numpy()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 50, 1000])
def test_top_k_matches_transformers(hf, seed, k):
    torch, lp = hf
    x = _random_logits(seed)
    np.testing.assert_array_equal(S.top_k_mask(x, k), _hf(torch, lp.TopKLogitsWarper(k), x))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_matches_transformers(hf, seed, p):
    torch, lp = hf
    x = _random_logits(seed)
    np.testing.assert_array_equal(S.top_p_mask(x, p), _hf(torch, lp.TopPLogitsWarper(p), x))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [0.01, 0.1, 0.5, 0.95])
def test_min_p_matches_transformers(hf, seed, m):
    torch, lp = hf
    x = _random_logits(seed)
    np.testing.assert_array_equal(S.min_p_mask(x, m), _hf(torch, lp.MinPLogitsWarper(m), x))


@pytest.mark.parametrize("penalty", [0.5, 1.3, 2.0])
def test_repetition_penalty_matches_transformers(hf, penalty):
    torch, lp = hf
    x = _random_logits(0)
    seen = [int(i) for i in np.random.default_rng(1).integers(0, x.size, 300)]
    ours = S.apply_repetition_penalty(x, seen, penalty)
    theirs = _hf(torch, lp.RepetitionPenaltyLogitsProcessor(penalty), x, seen)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("t", [0.3, 1.0, 1.7])
def test_temperature_matches_transformers(hf, t):
    torch, lp = hf
    x = _random_logits(2)
    np.testing.assert_allclose(S.apply_temperature(x, t), _hf(torch, lp.TemperatureLogitsWarper(t), x), rtol=1e-6)


def test_chain_matches_transformers(hf):
    """The whole chain in transformers' order gives the same support as ours."""
    torch, lp = hf
    x = _random_logits(3)
    seen = list(range(0, 4096, 7))
    chain = lp.LogitsProcessorList([
        lp.RepetitionPenaltyLogitsProcessor(1.2), lp.TemperatureLogitsWarper(0.7),
        lp.TopKLogitsWarper(200), lp.TopPLogitsWarper(0.9), lp.MinPLogitsWarper(0.05),
    ])
    theirs = _hf(torch, chain, x, seen)
    ours = S.apply_repetition_penalty(x, seen, 1.2)
    ours = S.min_p_mask(S.top_p_mask(S.top_k_mask(S.apply_temperature(ours, 0.7), 200), 0.9), 0.05)
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(theirs))
    np.testing.assert_allclose(ours[np.isfinite(ours)], theirs[np.isfinite(theirs)], rtol=1e-6)
    assert math.isfinite(float(ours.max()))


@pytest.mark.parametrize("shape", ["flat", "peaked", "masked"])
@pytest.mark.parametrize("p", [0.1, 0.9, 0.999])
def test_top_p_fast_paths_match_transformers(hf, shape, p):
    """top_p sorts only the head of peaked distributions, and only finite entries after top-k."""
    torch, lp = hf
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(50_000) * (0.01 if shape == "flat" else 2)).astype(np.float32)
    if shape == "peaked":
        x[rng.integers(0, x.size, 40)] += 12
    if shape == "masked":
        x = S.top_k_mask(x, 300)
    np.testing.assert_array_equal(S.top_p_mask(x, p), _hf(torch, lp.TopPLogitsWarper(p), x))
