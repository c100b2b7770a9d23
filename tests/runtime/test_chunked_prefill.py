"""Long prompts are prefilled in passes of at most `prefill_chunk` rows: bounded activations, the same output."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edge_sdk
from edge_sdk.runtime.engine import split_rows
from edge_sdk.runtime.generate import MIN_PREFILL_ROWS, generate_tokens
from edge_sdk.runtime.sampling import make_sampler


@pytest.mark.parametrize("chunk", [3, 4, 7, 64])
def test_split_rows_covers_the_prompt_without_a_lone_row(chunk):
    for n in range(1, 200):
        pieces = split_rows(n, chunk)
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # contiguous, in order
        assert all(0 < end - start <= chunk for start, end in pieces)
        if n > 1:
            assert all(end - start >= MIN_PREFILL_ROWS for start, end in pieces), (n, pieces)
    with pytest.raises(ValueError):
        split_rows(10, 2)


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle)


def _prompt(model, n):
    rng = np.random.default_rng(n)
    return rng.integers(3, model.manifest["architecture"]["vocab_size"], n).tolist()


@pytest.mark.parametrize("chunk", [3, 5, 16])
def test_chunked_prefill_gives_the_one_shot_logits(model, chunk, monkeypatch):
    ids = _prompt(model, 61)
    model.decoder.reset()
    one_shot = model.engine.forward(ids, all_logits=True)
    model.decoder.reset()
    last_one_shot = model.engine.forward(ids)
    model.decoder.reset()
    passes = []
    run = model.engine.session.run_with_iobinding
    monkeypatch.setattr(model.engine.session, "run_with_iobinding", lambda io: (passes.append(1), run(io)))
    monkeypatch.setattr(model.engine, "prefill_chunk", chunk)
    chunked = model.engine.forward(ids, all_logits=True)
    assert len(passes) == len(split_rows(61, chunk)) > 1  # it really ran in several passes
    model.decoder.reset()
    last = model.engine.forward(ids)
    assert chunked.shape == one_shot.shape
    # fp32 graphs: the same sums in another order (the attention of a pass over the cached rows)
    assert np.abs(chunked - one_shot).max() <= 1e-4
    assert (chunked.argmax(-1) == one_shot.argmax(-1)).all()
    np.testing.assert_allclose(last, last_one_shot, atol=1e-4)
    np.testing.assert_array_equal(last, chunked[-1])
    model.decoder.reset()


def test_generation_after_a_chunked_prompt_is_unchanged(model, monkeypatch):
    ids = _prompt(model, 90)
    model.decoder.reset()
    want = list(generate_tokens(model.decoder, ids, max_new_tokens=20, sampler=make_sampler(0.0)))
    monkeypatch.setattr(model.engine, "prefill_chunk", 8)
    model.decoder.reset()
    got = list(generate_tokens(model.decoder, ids, max_new_tokens=20, sampler=make_sampler(0.0)))
    assert got == want
    # The prompt counts as computed in many-row passes (generate.Decoder.clean): the next turn reuses it.
    assert model.decoder.clean == len(ids)
    model.decoder.reset()


def test_a_chunked_prompt_fills_the_cache_exactly(model, monkeypatch):
    monkeypatch.setattr(model.engine, "prefill_chunk", 16)
    model.decoder.reset()
    ids = _prompt(model, model.max_context)  # the whole context, in 16 passes
    model.decoder.prefill(ids)
    assert model.engine.offset == model.max_context
    from edge_sdk.errors import ContextLengthError

    with pytest.raises(ContextLengthError):
        model.engine.forward([5])
    model.decoder.reset()


def test_forced_spans_of_a_grammar_survive_chunking(model, monkeypatch):
    """Structured output runs forced tokens through forward() several at a time: split into passes, the
    answer is the same."""
    pytest.importorskip("llguidance")
    schema = {"type": "object", "properties": {"a_rather_long_key_name": {"type": "integer", "minimum": 0,
                                                                          "maximum": 9},
                                               "another_long_key_name": {"type": "boolean"}},
              "required": ["a_rather_long_key_name", "another_long_key_name"], "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}
    want = model.generate("x", response_format=rf, max_new_tokens=60)
    monkeypatch.setattr(model.engine, "prefill_chunk", 3)
    got = model.generate("x", response_format=rf, max_new_tokens=60)
    assert got == want and json.loads(got)["another_long_key_name"] in (True, False)
