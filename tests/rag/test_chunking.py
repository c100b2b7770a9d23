"""Token-sized, sentence-aware chunks: examples, then properties over arbitrary text (hypothesis)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk.runtime.rag.chunking import chunk_text


def words(text: str) -> int:
    return len(text.split())


def chars(text: str) -> int:  # a tokenizer whose counts are not additive over words: one token per character
    return len(text)


def check(text, chunks, count, max_tokens):
    for c in chunks:
        assert text[c.start:c.end] == c.text and c.text == c.text.strip() and c.text
        assert c.tokens == count(c.text) <= max_tokens
    covered = [False] * len(text)
    for c in chunks:
        covered[c.start:c.end] = [True] * (c.end - c.start)
    missed = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not missed, f"characters not in any chunk at {missed[:5]}"
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_short_text_is_one_chunk():
    text = "  One sentence. Two sentences.\n"
    [c] = chunk_text(text, words, max_tokens=10, overlap_tokens=2)
    assert (c.text, c.start, c.end, c.tokens) == ("One sentence. Two sentences.", 2, 30, 4)


def test_empty_and_blank_text_have_no_chunks():
    assert chunk_text("", words) == [] and chunk_text(" \n\n\t ", words) == []


def test_breaks_at_sentence_ends_with_overlap():
    text = " ".join(f"Sentence number {i} is here." for i in range(12))  # 5 words each
    chunks = chunk_text(text, words, max_tokens=20, overlap_tokens=5)
    check(text, chunks, words, 20)
    assert all(c.text.endswith(".") and c.text.startswith("Sentence") for c in chunks)
    for a, b in zip(chunks, chunks[1:]):  # the next chunk starts with the previous one's last sentence
        assert b.start < a.end and a.text.endswith(text[b.start:a.end])
        assert words(text[b.start:a.end]) == 5


def test_prefers_paragraph_breaks_and_starts_headings_fresh():
    para = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota."  # 9 words
    text = f"{para}\n\n{para}\n\n# Heading\n\nShort one. Under the heading."
    chunks = chunk_text(text, words, max_tokens=20, overlap_tokens=4)
    check(text, chunks, words, 20)
    assert chunks[0].text == f"{para}\n\n{para}"  # 18 words: the paragraph break, not the middle of the next
    assert chunks[-1].text.startswith("# Heading")  # a heading: a new chunk and no overlap before it
    assert not any("Heading" in c.text and c.text.startswith("Eta") for c in chunks)


def test_a_huge_sentence_is_cut_at_words_and_a_huge_word_hard():
    text = " ".join(f"w{i}" for i in range(100)) + " " + "x" * 500
    chunks = chunk_text(text, words, max_tokens=16, overlap_tokens=4)
    check(text, chunks, words, 16)
    assert all(not c.text[0].isspace() for c in chunks)
    hard = chunk_text("y" * 100, chars, max_tokens=30, overlap_tokens=0)
    check("y" * 100, hard, chars, 30)
    assert [c.tokens for c in hard] == [30, 30, 30, 10]


def test_crlf_free_markdown_lists_break_at_lines():
    text = "Shopping:\n- apples and pears\n- bread and butter\n- milk and honey\n- tea and coffee"
    chunks = chunk_text(text, words, max_tokens=8, overlap_tokens=0)
    check(text, chunks, words, 8)
    assert all(not c.text.startswith(("and", "pears", "butter")) for c in chunks)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_text("a", words, max_tokens=0)
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_text("a", words, max_tokens=10, overlap_tokens=10)
    with pytest.raises(ValueError, match="alone is more than"):
        chunk_text("abc", lambda s: 2 * len(s), max_tokens=1, overlap_tokens=0)


# -- properties -------------------------------------------------------------------------------------
pieces = st.sampled_from(["word", "Word.", "end!", "why?", "a", "\n", "\n\n", " ", "  ", "# Title\n", "\n## Sub ",
                          "- item\n", "x" * 40, "\u00e9t\u00e9", "\u201cquoted.\u201d", "\t", "\r\n", "1.5", "..."])
texts = st.one_of(st.lists(pieces, max_size=120).map(" ".join), st.lists(pieces, max_size=120).map("".join),
                  st.text(max_size=400))


@settings(max_examples=300, deadline=None)
@given(text=texts, max_tokens=st.integers(1, 40), overlap=st.integers(0, 39))
def test_properties_with_a_word_counter(text, max_tokens, overlap):
    overlap = min(overlap, max_tokens - 1)
    chunks = chunk_text(text, words, max_tokens, overlap)
    check(text, chunks, words, max_tokens)
    assert chunks == chunk_text(text, words, max_tokens, overlap)  # deterministic


@settings(max_examples=150, deadline=None)
@given(text=texts, max_tokens=st.integers(1, 60), overlap=st.integers(0, 59))
def test_properties_with_a_character_counter(text, max_tokens, overlap):
    overlap = min(overlap, max_tokens - 1)
    check(text, chunk_text(text, chars, max_tokens, overlap), chars, max_tokens)


def test_a_big_document_is_fast_enough():
    import time

    text = "\n\n".join(" ".join(f"Sentence {p} {s} has some words in it." for s in range(8)) for p in range(2000))
    t0 = time.perf_counter()
    chunks = chunk_text(text, words, max_tokens=200, overlap_tokens=40)
    assert time.perf_counter() - t0 < 5
    check(text, chunks, words, 200)
    assert 120 <= max(c.tokens for c in chunks) <= 200
