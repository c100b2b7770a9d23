"""The token loop's constraint: masks applied as llguidance's own reference does, and every sampler drawing
from exactly the distribution of "mask the logits, then sample with the request's settings"."""
from __future__ import annotations

import numpy as np
import pytest

from edge_sdk.runtime import sampling
from edge_sdk.runtime.structured.constraint import GrammarConstraint
from edge_sdk.runtime.structured.mask import Bitmask

from .conftest import matcher_for

llg = pytest.importorskip("llguidance")
from llguidance.numpy import apply_token_bitmask_inplace  # noqa: E402  (llguidance's reference implementation)

VOCAB = 512


def test_bitmask_matches_llguidances_reference():
    rng = np.random.default_rng(0)
    for vocab in (VOCAB, 49152, 1000, 33):  # also sizes that are not a multiple of 32
        for density in (0.001, 0.5, 0.999):
            mask = Bitmask(vocab)
            bits = rng.random(vocab) < density
            packed = np.packbits(bits, bitorder="little")
            mask.words.view(np.uint8)[:len(packed)] = packed
            logits = rng.standard_normal(vocab).astype(np.float32)
            ref = logits.copy()[None]
            apply_token_bitmask_inplace(ref, mask.words[None].copy())
            np.testing.assert_array_equal(mask.apply(logits), ref[0])
            np.testing.assert_array_equal(mask.allowed(), bits)
            some = rng.integers(0, vocab, 20)
            assert [mask.allows(int(t)) for t in some] == list(bits[some])
            assert mask.allows_all(some) == bool(bits[some].all())
            assert not mask.allows(vocab) and not mask.allows(-1)
            assert mask.only() == (int(np.flatnonzero(bits)[0]) if bits.sum() == 1 else None)
    one = Bitmask(100)
    one.words[2] = 1 << 5
    assert one.only() == 69


@pytest.fixture
def ab_grammar():
    # Lowercase words of 1-12 letters: about a quarter of the 512 tokens are allowed at each step.
    return 'start: /[a-z]{1,12}/\n'


def constraint(lark, llg_tokenizer):
    return GrammarConstraint(matcher_for(lark, llg_tokenizer), VOCAB, [2])


def test_greedy_is_the_masked_argmax(ab_grammar, llg_tokenizer):
    rng = np.random.default_rng(1)
    hits = masked = 0
    for _ in range(200):
        c = constraint(ab_grammar, llg_tokenizer)
        logits = rng.standard_normal(VOCAB).astype(np.float32)
        c.mask.fill(c.matcher)
        if rng.random() < 0.5:  # half the time the unmasked argmax is an allowed token (the fast path)
            allowed = np.flatnonzero(c.mask.allowed())
            logits[rng.choice(allowed)] = 10.0
        expected = int(np.argmax(c.mask.apply(logits)))
        assert c.sampler(sampling.make_sampler(0.0))(logits) == expected
        hits, masked = hits + c.stats.checked, masked + c.stats.masked
    assert hits > 50 and masked > 50  # both paths were taken


def test_eos_only_once_the_grammar_accepts(ab_grammar, llg_tokenizer):
    c = constraint(ab_grammar, llg_tokenizer)
    greedy = c.sampler(sampling.make_sampler(0.0))
    logits = np.zeros(VOCAB, np.float32)
    logits[2] = 100.0  # the model wants to stop right away
    assert greedy(logits) != 2  # ... but an empty text is not in the grammar
    a = llg_tokenizer.tokenize_str("a")
    assert len(a) == 1 and c.matcher.consume_token(a[0])
    assert greedy(logits) == 2  # "a" is a complete text: now EOS is allowed
    for _ in range(11):
        c.matcher.consume_token(a[0])
    assert c.matcher.is_stopped() and greedy(np.zeros(VOCAB, np.float32)) == 2  # 12 letters: only EOS is left


@pytest.mark.parametrize("settings", [dict(temperature=0.7, top_k=5), dict(temperature=1.0, top_k=40, top_p=0.9),
                                      dict(temperature=1.3, top_p=0.8), dict(temperature=0.9, min_p=0.05),
                                      dict(temperature=1.0, top_k=3, min_p=0.1)])
def test_top_k_top_p_min_p_draw_what_the_masked_row_draws(settings, ab_grammar, llg_tokenizer):
    """With the same seed, the constrained sampler and base(mask.apply(logits)) pick the same tokens: when
    all top-k candidates are allowed the masked top-k set is the same set, otherwise the row is masked."""
    rng = np.random.default_rng(2)
    ours = constraint(ab_grammar, llg_tokenizer)
    sample = ours.sampler(sampling.make_sampler(seed=11, **settings), **settings)
    reference = sampling.make_sampler(seed=11, **settings)
    ref_mask = constraint(ab_grammar, llg_tokenizer)
    for _ in range(300):
        logits = rng.standard_normal(VOCAB).astype(np.float32) * 2
        ref_mask.mask.fill(ref_mask.matcher)
        if rng.random() < 0.5 and settings.get("top_k"):
            allowed = np.flatnonzero(ref_mask.mask.allowed())
            logits[rng.choice(allowed, size=min(len(allowed), 60), replace=False)] += 8  # top-k all allowed
        assert sample(logits) == reference(ref_mask.mask.apply(logits))
    if settings.get("top_k"):
        assert 0 < ours.stats.checked < 300  # the check-first path and the masked path both ran


def test_temperature_sampling_is_exact_rejection(ab_grammar, llg_tokenizer):
    """Plain temperature sampling draws once from the full row and keeps an allowed token, else draws from
    the masked row: the result must follow the masked softmax exactly (chi-square over 40k draws)."""
    rng = np.random.default_rng(3)
    c = constraint(ab_grammar, llg_tokenizer)
    c.mask.fill(c.matcher)
    allowed = c.mask.allowed()
    temperature = 0.8
    logits = rng.standard_normal(VOCAB).astype(np.float32)
    # Allowed and disallowed tokens get about half the probability mass each: both branches run often.
    logits[allowed] += temperature * np.log((VOCAB - allowed.sum()) / allowed.sum())
    sample = c.sampler(sampling.make_sampler(temperature, seed=5), temperature=temperature)
    n = 40_000
    counts = np.bincount([sample(logits) for _ in range(n)], minlength=VOCAB)
    x = logits.astype(np.float64) / temperature
    p = np.where(allowed, np.exp(x - x.max()), 0.0)
    p /= p.sum()
    assert counts[~allowed].sum() == 0
    keep = p * n >= 5  # chi-square over cells with enough expected counts, the rest pooled
    expected = np.append(p[keep] * n, p[~keep].sum() * n)
    observed = np.append(counts[keep], counts[~keep].sum())
    chi2 = (((observed - expected) ** 2) / np.maximum(expected, 1e-9)).sum()
    dof = len(expected) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)  # ~5 sigma
    assert 0.2 < c.stats.checked / n < 0.9  # rejection did both things


def test_advance_returns_forced_tokens_and_completion(llg_tokenizer):
    c = constraint('start: "yes, definitely" | "no"\n', llg_tokenizer)
    y = llg_tokenizer.tokenize_str("y")[0]
    forced, done = c.advance(y)
    assert llg_tokenizer.decode_str([y] + forced) == "yes, definitely" and done
    c = constraint('start: "no" | "nope"\n', llg_tokenizer)
    forced, done = c.advance(llg_tokenizer.tokenize_str("n")[0])
    assert not done  # "no" could be complete, "nope" goes on: EOS is the model's choice


def test_an_engine_error_is_a_clear_error(ab_grammar, llg_tokenizer):
    from edge_sdk.errors import StructuredOutputError

    c = constraint(ab_grammar, llg_tokenizer)
    with pytest.raises(StructuredOutputError, match="grammar engine"):
        c.advance(llg_tokenizer.tokenize_str("7")[0])  # a token the grammar does not allow
