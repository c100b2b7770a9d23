"""Text as the privacy gate reads it: lookalikes folded, invisible characters dropped, positions kept.

Personal data is easy to disguise from a pattern: a zero-width space inside an address, full-width digits
(４１１１), a non-breaking space or an en dash between digit groups, Arabic-Indic digits. The gate matches on
a normalised copy and maps every match back to the original text, so redaction cuts the original where
the data really is (invisible characters inside it included).

Per character cluster (a base character and the combining marks after it):
- invisible characters are dropped: format characters (Unicode category Cf: zero-width space and joiners,
  soft hyphen, word joiner, BOM, bidirectional controls) and the other default-ignorable ones (variation
  selectors, the combining grapheme joiner, Hangul fillers);
- the rest goes through NFKC (full-width letters and digits, ＠, ligatures, compatibility spaces);
- every decimal digit of any script becomes its ASCII digit; every space separator becomes " "; dashes
  and minus signs become "-".
ASCII text is returned as it is (nothing in it changes), which keeps the common case fast.
"""
from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"), "-")
# A stretch of non-ASCII characters with the character before it (an "e" followed by a combining accent
# is one cluster: NFKC composes them).
_NON_ASCII = re.compile(r"[\x00-\x7f]?[^\x00-\x7f]+")


@dataclass(frozen=True)
class Normalized:
    """`text`, normalised, and where each of its characters came from in `original`."""

    original: str
    text: str
    # Segments in order: (start in text, start in original, end in original, copied): a copied segment maps
    # character for character; any other segment is one cluster of `original` (all its characters map to it).
    segments: tuple[tuple[int, int, int, bool], ...] = ()
    starts: tuple[int, ...] = ()  # each segment's start in text (for bisect)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The slice of `original` that text[start:end] (end > start) was made from."""
        if not self.segments:  # nothing changed
            return start, end
        return self._origin(start)[0], self._origin(end - 1)[1]

    def _origin(self, i: int) -> tuple[int, int]:
        n_start, o_start, o_end, copied = self.segments[bisect.bisect_right(self.starts, i) - 1]
        if copied:
            return o_start + (i - n_start), o_start + (i - n_start) + 1
        return o_start, o_end


def normalize(text: str) -> Normalized:
    if text.isascii():
        return Normalized(text, text)
    out: list[str] = []
    segments: list[tuple[int, int, int, bool]] = []
    n = 0  # length of the normalised text so far
    pos = 0
    for m in _NON_ASCII.finditer(text):
        if m.start() > pos:  # an ASCII stretch: copied as it is
            segments.append((n, pos, m.start(), True))
            out.append(text[pos:m.start()])
            n += m.start() - pos
        i = m.start()
        while i < m.end():
            j = i + 1
            while j < len(text) and unicodedata.combining(text[j]):  # the marks that belong to this character
                j += 1
            folded = _fold(text[i:j])
            if folded:
                segments.append((n, i, j, False))
                out.append(folded)
                n += len(folded)
            i = j
        pos = m.end()
    if pos < len(text):
        segments.append((n, pos, len(text), True))
        out.append(text[pos:])
    return Normalized(text, "".join(out), tuple(segments), tuple(s[0] for s in segments))


def _invisible(c: str) -> bool:
    """Format characters, and the other default-ignorable code points that render as nothing (combining
    grapheme joiner, Hangul fillers, variation selectors ...)."""
    return unicodedata.category(c) == "Cf" or any(lo <= ord(c) <= hi for lo, hi in _IGNORABLE)


_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
              (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF))


@functools.lru_cache(maxsize=8192)  # text repeats its letters: a lookup instead of four Unicode queries
def _fold(cluster: str) -> str:
    """One cluster as the gate reads it ("" for an invisible one)."""
    cluster = "".join(c for c in cluster if not _invisible(c))
    if not cluster:
        return ""
    out = []
    for c in unicodedata.normalize("NFKC", cluster).translate(_DASHES):
        if c.isascii():
            out.append(c)
        elif unicodedata.category(c) == "Nd":
            out.append(str(unicodedata.decimal(c)))
        elif unicodedata.category(c) == "Zs":
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)
