"""Prompt-lookup speculative decoding on the tiny bundle: same tokens as plain greedy, consistent cache."""
from __future__ import annotations

import pytest

import edge_sdk
from edge_sdk.runtime.generate import GenerationStats, generate_tokens
from edge_sdk.runtime.sampling import make_sampler
from edge_sdk.runtime.speculative import SpeculativeStats, find_draft, generate_tokens_speculative

pytest.importorskip("torch")  # the tiny bundle is exported with torch

GREEDY = make_sampler(0.0)


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


def _plain(model, ids, n, eos=()):
    model.decoder.reset()
    return list(generate_tokens(model.decoder, ids, max_new_tokens=n, sampler=GREEDY, eos_ids=eos))


def _spec(model, ids, n, eos=(), **kw):
    model.decoder.reset()
    stats = SpeculativeStats()
    out = list(generate_tokens_speculative(model.decoder, ids, max_new_tokens=n, eos_ids=eos, stats=stats, **kw))
    return out, stats


def _repetitive(model):
    return model.tokenizer.encode("the quick brown fox jumps over the lazy dog. " * 6)


def test_find_draft_takes_the_most_recent_longest_match():
    #        0  1  2  3  4  5  6  7  8  9
    ctx = [1, 2, 3, 9, 1, 2, 4, 5, 1, 2]
    assert find_draft(ctx, 2, 3) == [4, 5]  # suffix [1, 2]: the occurrence at 4 is newer than at 0
    assert find_draft(ctx + [3], 3, 3) == [9, 1, 2]  # [1, 2, 3] recurs only at 0
    assert find_draft([5, 6, 7], 4, 3) == []
    assert find_draft([7, 7], 4, 3) == [7]  # the draft stops where the context ends


@pytest.mark.parametrize("text", ["hello world", "paris france capital sea haiku", "0 1 2 3 4 5 6 7 8 9"])
def test_same_tokens_as_plain_greedy(model, text):
    ids = model.encode_prompt(text)
    for num_draft, max_ngram in ((8, 3), (2, 1)):
        out, stats = _spec(model, ids, 40, num_draft=num_draft, max_ngram=max_ngram)
        assert out == _plain(model, ids, 40)
        assert stats.new_tokens == len(out)


def test_repetitive_prompt_accepts_drafts_and_needs_fewer_passes(model):
    ids = _repetitive(model)
    out, stats = _spec(model, ids, 48)
    assert out == _plain(model, ids, 48)
    assert stats.proposed > 0 and stats.accepted > 0
    assert stats.forwards <= len(out) - 1


def test_eos_and_length_stops_match_plain(model):
    ids = _repetitive(model)
    ref = _plain(model, ids, 30)
    eos = (ref[12],)  # pretend a mid-reply token is eos: generation must stop right before it
    out, stats = _spec(model, ids, 30, eos=eos)
    assert out == _plain(model, ids, 30, eos=eos) and stats.stop_reason == "eos"
    out, stats = _spec(model, ids, 7)
    assert out == ref[:7] and stats.stop_reason == "length"


@pytest.mark.parametrize("eos_at", [None, 9])
def test_cache_after_speculation_continues_like_plain_greedy(model, eos_at):
    ids = _repetitive(model)
    ref = _plain(model, ids, 40)
    eos = (ref[eos_at],) if eos_at is not None else ()
    model.decoder.reset()
    out = list(generate_tokens_speculative(model.decoder, ids, max_new_tokens=20, eos_ids=eos))
    expect_held = len(ids) + len(out) - (0 if eos else 1)
    assert model.decoder.tokens == (ids + out)[:expect_held]
    assert model.engine.offset == len(model.decoder.tokens)
    # Continue with plain decoding straight from the cache the speculative run left behind.
    logits = model.decoder.step(out[-1]) if not eos else None
    nxt = GREEDY(logits) if logits is not None else None
    if not eos:
        assert nxt == ref[20]
    # And a fresh prompt reusing the prefix gives the reference continuation too.
    more = list(generate_tokens(model.decoder, ids + ref[:25], max_new_tokens=10, sampler=GREEDY))
    assert more == ref[25:35]


def test_cancel_leaves_the_cache_like_plain(model):
    ids = _repetitive(model)
    model.decoder.reset()
    stats = GenerationStats()  # a plain stats object works too
    gen = generate_tokens_speculative(model.decoder, ids, max_new_tokens=30, stats=stats)
    got = [next(gen) for _ in range(5)]
    gen.close()
    assert stats.stop_reason == "cancelled"
    assert model.decoder.tokens == ids + got[:-1] and model.engine.offset == len(ids) + 4


def test_context_limit_stops_like_plain(model):
    cap = model.max_context
    ids = (_repetitive(model) * 20)[: cap - 5]
    out, stats = _spec(model, ids, 50)
    plain_stats = GenerationStats()
    model.decoder.reset()
    ref = list(generate_tokens(model.decoder, ids, max_new_tokens=50, sampler=GREEDY, stats=plain_stats))
    assert out == ref and stats.stop_reason == plain_stats.stop_reason == "context"


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="num_draft"):
        list(generate_tokens_speculative(model.decoder, [1, 2], max_new_tokens=3, num_draft=0))
    with pytest.raises(ValueError, match="max_ngram"):
        list(generate_tokens_speculative(model.decoder, [1, 2], max_new_tokens=3, max_ngram=99))
