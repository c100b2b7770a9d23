"""A document's text cut into chunks that fit the embedder, measured in its tokens.

The text is first segmented into *units* (sentences, list lines, and pieces of over-long sentences),
each tagged with the strength of the break before it: heading > paragraph > sentence > line > word
> hard cut. Units are then packed greedily into chunks of at most `max_tokens`; when a chunk is full
it ends at the strongest break that still leaves it at least half full, and the next chunk starts
with the last units of the previous one worth about `overlap_tokens` (so that a fact cut in two by a
chunk boundary is whole in one of them). A Markdown heading always starts a new chunk, without
overlap: it opens a new topic.

Token counts of units are summed as an estimate (exact for WordPiece, whose pre-tokenizer splits at
whitespace, and close for BPE); every emitted chunk is then counted for real, so `max_tokens` holds
for any tokenizer.

Chunks are stripped of surrounding whitespace; together they cover every other character of the
text, and `text[chunk.start:chunk.end] == chunk.text`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# Strength of the break before a unit: higher = a better place to end a chunk.
HARD, WORD, LINE, SENTENCE, PARAGRAPH, HEADING = range(6)

# A new unit starts at the first non-space character after one of these.
_BREAKS = re.compile(
    r"(?P<paragraph>\n[ \t]*\n\s*)"                                # a blank line
    r"|(?P<sentence>(?<=[.!?。！？])[\"')\]»”’]*\s+)"  # a sentence end (closing quotes stay with it)
    r"|(?P<line>\n\s*)"                                        # any other line break
)
_HEADING = re.compile(r"#{1,6}[ \t]")  # a Markdown ATX heading, at a line start
_SPACE = re.compile(r"\s+")
# A token is rarely longer than this many characters; a "word" longer than max_tokens times this (a base64
# blob, a minified line) is cut even if the tokenizer counts it as one unknown token, to bound chunk sizes.
MAX_CHARS_PER_TOKEN = 32


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: `text == document[start:end]`; `tokens` as the embedder counts them."""

    text: str
    start: int
    end: int
    tokens: int


def chunk_text(text: str, count_tokens: Callable[[str], int], max_tokens: int = 200,
               overlap_tokens: int = 40) -> list[Chunk]:
    """Cut `text` into chunks of at most `max_tokens` tokens (as `count_tokens` counts them), each
    starting with about `overlap_tokens` tokens of the previous one's end. Deterministic.

    Raises ValueError for max_tokens < 1, overlap_tokens < 0 or overlap_tokens >= max_tokens, and when a
    single character is more than max_tokens tokens (a max_tokens far too small for the tokenizer).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens} (max_tokens {max_tokens})")
    # An over-long sentence is cut into pieces of ~1/8 chunk, so that chunks fill up and overlap inside it too.
    piece = max(1, max_tokens // 8)
    units = [u for a, b, kind in _segment(text) for u in _fit(text, a, b, kind, count_tokens, max_tokens, piece)]
    return _pack(text, units, count_tokens, max_tokens, overlap_tokens)


# -- segmentation ----------------------------------------------------------------------------------
def _segment(text: str) -> list[tuple[int, int, int]]:
    """(start, end, break strength before) of contiguous units covering the whole text."""
    starts = {0: PARAGRAPH}
    for m in _BREAKS.finditer(text):
        if m.end() >= len(text):
            continue
        if m.lastgroup == "paragraph" or re.search(r"\n[ \t]*\n", m.group()):
            kind = PARAGRAPH
        else:
            kind = SENTENCE if m.lastgroup == "sentence" else LINE
        if _HEADING.match(text, m.end()) and "\n" in m.group():
            kind = HEADING
        starts[m.end()] = kind
    positions = sorted(starts)
    return [(a, b, starts[a]) for a, b in zip(positions, positions[1:] + [len(text)])]


def _fit(text: str, a: int, b: int, kind: int, count: Callable[[str], int], max_tokens: int, piece_tokens: int):
    """The unit [a, b) as (start, end, kind, tokens): whole if it fits in max_tokens, else cut at
    whitespace into pieces of at most piece_tokens, and a word that alone is too long cut hard."""
    n = count(text[a:b])
    if n <= max_tokens and b - a <= max_tokens * MAX_CHARS_PER_TOKEN:
        yield a, b, kind, n
        return
    max_tokens, max_chars = piece_tokens, piece_tokens * MAX_CHARS_PER_TOKEN
    # Words (with their trailing whitespace) packed greedily by their summed counts; each piece is then
    # counted for real and shrunk word by word in the rare case the sum was optimistic.
    start, total, words = a, 0, []  # words: (end, tokens) of the words in the current piece
    for m in _word_ends(text, a, b):
        w = count(text[(words[-1][0] if words else start):m])
        if words and (total + w > max_tokens or m - start > max_chars):
            yield from _emit_words(text, start, words, kind, count, max_tokens)
            start, total, words, kind = words[-1][0], 0, [], WORD
        if w > max_tokens or m - start > max_chars:  # one word alone is too long: cut it hard
            yield from _hard_cut(text, start, m, kind, count, max_tokens, max_chars)
            start, kind = m, WORD
            continue
        words.append((m, w))
        total += w
    if words:
        yield from _emit_words(text, start, words, kind, count, max_tokens)


def _word_ends(text: str, a: int, b: int):
    for m in _SPACE.finditer(text, a, b):
        if a < m.start() and m.end() < b:
            yield m.end()
    yield b


def _emit_words(text: str, start: int, words: list[tuple[int, int]], kind: int, count, max_tokens: int):
    i = len(words)
    while i > 1 and count(text[start:words[i - 1][0]]) > max_tokens:
        i -= 1
    end = words[i - 1][0]
    yield start, end, kind, count(text[start:end])
    if i < len(words):  # the words that did not fit after all start the next piece
        yield from _emit_words(text, end, [(e, t) for e, t in words[i:]], WORD, count, max_tokens)


def _hard_cut(text: str, a: int, b: int, kind: int, count: Callable[[str], int], max_tokens: int, max_chars: int):
    while a < b:
        # The longest prefix that fits, by bisection (a prefix never has more tokens than the whole).
        lo, hi = a + 1, min(b, a + max_chars)
        if count(text[a:lo]) > max_tokens:
            raise ValueError(f"the character {text[a]!r} alone is more than max_tokens={max_tokens} tokens")
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[a:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        yield a, lo, kind, count(text[a:lo])
        a, kind = lo, HARD


# -- packing ---------------------------------------------------------------------------------------
def _pack(text: str, units: list[tuple[int, int, int, int]], count: Callable[[str], int], max_tokens: int,
          overlap_tokens: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    first = 0   # the first unit of the current chunk (overlap included)
    new = 0     # the first unit not in any earlier chunk
    n = len(units)
    while new < n:
        # Extend while the estimate fits; a heading ends the chunk (unless it is the chunk's first new unit).
        total = sum(u[3] for u in units[first:new])
        last = new
        total += units[new][3]
        while last + 1 < n and units[last + 1][2] != HEADING and total + units[last + 1][3] <= max_tokens:
            last += 1
            total += units[last][3]
        if last + 1 < n and units[last + 1][2] != HEADING:
            last = _best_break(units, first, new, last, max_tokens)
        # The real count decides: drop units from the end, then the overlap, until it fits.
        while True:
            chunk = _make_chunk(text, units[first][0], units[last][1], count)
            if chunk is None or chunk.tokens <= max_tokens:
                break
            if last > new:
                last -= 1
            elif first < new:
                first += 1
            else:  # cannot happen: _fit made every unit fit alone
                raise AssertionError("a unit over max_tokens")
        if chunk is not None:
            chunks.append(chunk)
        new = last + 1
        first = _overlap_start(units, first, new, last, overlap_tokens, max_tokens) if new < n else new
    return chunks


def _best_break(units, first: int, new: int, last: int, max_tokens: int) -> int:
    """The unit to end the chunk with: the one followed by the strongest break, among those that leave
    the chunk at least half full (and `last`, the fullest); the latest of equals."""
    total = sum(u[3] for u in units[first:new])
    best, best_kind = last, -1
    for j in range(new, last + 1):
        total += units[j][3]
        if (2 * total >= max_tokens or j == last) and units[j + 1][2] >= best_kind:
            best, best_kind = j, units[j + 1][2]
    return best


def _overlap_start(units, first: int, new: int, last: int, overlap_tokens: int, max_tokens: int) -> int:
    """Where the next chunk starts: the last units of this one worth <= overlap_tokens (none before a
    heading), keeping room for the next unit and moving forward from this chunk's start."""
    if overlap_tokens == 0 or units[new][2] == HEADING:
        return new
    k, total = new, 0
    while k - 1 > first and total + units[k - 1][3] <= overlap_tokens:
        k -= 1
        total += units[k][3]
    while k < new and total + units[new][3] > max_tokens:
        total -= units[k][3]
        k += 1
    return k


def _make_chunk(text: str, a: int, b: int, count: Callable[[str], int]) -> Chunk | None:
    piece = text[a:b]
    stripped = piece.strip()
    if not stripped:
        return None
    start = a + (len(piece) - len(piece.lstrip()))
    return Chunk(stripped, start, start + len(stripped), count(stripped))
