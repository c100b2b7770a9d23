"""Personal data in text: found on a normalised copy (normalize.py), reported where it is in the original.

Detected (each with a check that keeps ordinary numbers out):
- e-mail addresses, internationalised ones included (letters of any script in the local part and the
  domain, IDN top-level domains);
- IBANs: a country code, two check digits and the account, compact or in groups of four, upper or lower
  case, spaces, dashes or dots between groups. With python-stdnum installed (the `privacy` extra) each
  country's registered length and account format are checked along with the mod-97 check digits; without
  it, any length from 15 to 34 that passes mod-97 counts, which flags more, never less;
- payment card numbers: 13-19 digits, in groups split by spaces (single, double, non-breaking), dashes,
  dots or slashes, or none, that pass the Luhn check;
- phone numbers: a run of digit groups (spaces, dashes, dots, slashes, brackets between them) with 7 to 15
  digits, or at least 6 after a "+". Numbers without a country code are not checked against any region's
  numbering plan: every string of 6 to 11 digits is a valid number in some region (measured with
  phonenumbers, docs/server.md), so no library can tell them from an order number; the gate counts them.
  Dates (2026-12-01, 01.12.2026, 12/01/2026), times and two-group decimals (3.14159) are not phones; a
  leading 00 or 011 is an international prefix (not counted in the 15).
The gate errs on the side of keeping a prompt on the device: a false positive costs a cloud answer, a
false negative sends someone's data away.
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

from .normalize import Normalized, normalize

KINDS = ("iban", "card", "email", "phone")  # most specific first: a card number also looks like a phone

_SEP = r"(?: {1,3}\(?| ?[-./] ?\(?|\) ?\(?|\()"  # between digit groups: always at least one character
# A run of digit groups; not inside a word or a longer number. Every separator is at least one character,
# so digits are never split two ways and the match is linear.
_RUN = re.compile(r"(?<![^\W_])(?:\+ ?)?\(?\d+(?:" + _SEP + r"\d+)*")
_DIGITS = re.compile(r"\d+")
_Y, _M, _D = r"(?:19|20)\d\d", r"(?:0?[1-9]|1[0-2])", r"(?:0?[1-9]|[12]\d|3[01])"
# Dates with a four-digit year (a two-digit one leaves 6 digits, too few for a phone on their own; and
# "+687 20.12.34" is a phone number in New Caledonia).
_DATE = re.compile(rf"(?<![\d.+/-])(?:{_Y}([-./]){_M}\1{_D}|{_D}([-./]){_M}\2{_Y}|{_M}([-./]){_D}\3{_Y})(?![\d])")
_IBAN_START = re.compile(r"(?<![^\W_])[A-Za-z]{2}[0-9]{2}")
_IBAN_BODY = re.compile(r"[A-Za-z0-9]{11,30}"  # compact
                        r"|(?:(?: {1,2}|[-.])[A-Za-z0-9]{4}){1,7}(?:(?: {1,2}|[-.])[A-Za-z0-9]{1,4})?")  # in fours
_LOCAL_PUNCT = set("!#$%&'*+/=?^_`{|}~-.")
MAX_LOCAL, MAX_DOMAIN = 256, 255  # e-mail parts scanned at most (RFC 5321 allows 64 and 255)


@dataclass(frozen=True)
class Span:
    kind: str
    start: int  # in the original text
    end: int
    text: str  # the original text of the span
    value: str = ""  # its canonical form (the same data written two ways has one value)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mod97_ok(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def iban_ok(text: str) -> bool:
    """Whether `text` (spaces, dashes and dots allowed, any case) is an IBAN: the country's registered length
    and format with python-stdnum, else a length of 15-34; and the mod-97 check digits."""
    compact = re.sub(r"[ .-]", "", text).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit() and _mod97_ok(compact)):
        return False
    registry = _stdnum_iban()
    return registry is None or registry.is_valid(compact, check_country=False)


_REGISTRY: list = []


def _stdnum_iban():
    """python-stdnum's IBAN module (every country's length and format), or None without the privacy extra."""
    if not _REGISTRY:
        try:
            from stdnum import iban
        except ImportError:
            iban = None
        _REGISTRY.append(iban)
    return _REGISTRY[0]


# -- finders: each yields (kind, start, end, value) in the normalised text -----------------------------------
def _ibans(t: str):
    for start in _IBAN_START.finditer(t):
        body = _IBAN_BODY.match(t, start.end())
        if body is None:
            continue
        chars = [(i, c) for i, c in enumerate(t[start.start():body.end()], start.start()) if c.isalnum()]
        # The longest that checks out (a shorter one could leave part of the account unredacted), where a
        # word ends first: "... 9789 today" joins "toda" to the groups only if nothing else checks out.
        lengths = range(min(34, len(chars)), 14, -1)
        ends_word = [n for n in lengths if chars[n - 1][0] + 1 == len(t) or not t[chars[n - 1][0] + 1].isalnum()]
        for n in ends_word + [n for n in lengths if n not in ends_word]:
            compact = "".join(c for _, c in chars[:n]).upper()
            if iban_ok(compact):
                yield "iban", start.start(), chars[n - 1][0] + 1, compact
                break


def _runs(t: str):
    """Cards and phones in runs of digit groups (dates masked out first)."""
    masked = _DATE.sub(lambda m: "#" * len(m.group()), t)
    for run in _RUN.finditer(masked):
        groups = [(run.start() + g.start(), run.start() + g.end()) for g in _DIGITS.finditer(run.group())]
        for part in _split(t, groups):
            plus = part[0] == groups[0] and run.group().startswith("+")
            yield from _numbers(t, part, run.start() if part[0] == groups[0] else part[0][0], plus)


def _split(t: str, groups: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """A run cut where a slash stands between spaces: "030 1234567 / 0170 1234567" is two numbers (but
    "030/1234567" is one)."""
    parts = [[groups[0]]]
    for g in groups[1:]:
        sep = t[parts[-1][-1][1]:g[0]]
        if sep.strip() == "/" and sep != "/":
            parts.append([])
        parts[-1].append(g)
    return parts


def _numbers(t: str, groups: list[tuple[int, int]], start: int, plus: bool):
    """Cards (the longest windows of whole groups that pass Luhn first), then phones in what they leave.
    A number after a "+" is a phone number with its country code, never a card."""
    windows = []  # (digits, first group, last group)
    total = sum(b - a for a, b in groups)
    for i in range(0 if plus or total < 13 else len(groups)):
        digits = 0
        for j in range(i, len(groups)):
            digits += groups[j][1] - groups[j][0]
            if digits > 19:
                break
            if digits >= 13 and luhn_ok("".join(t[a:b] for a, b in groups[i:j + 1])):
                windows.append((digits, i, j))
    taken: list[tuple[int, int]] = []
    for _, i, j in sorted(windows, key=lambda w: (-w[0], w[1])):  # "030 4111 1111 1111 1111": the 16, not the 15
        if all(j < a or i > b for a, b in taken):
            taken.append((i, j))
            yield "card", groups[i][0], groups[j][1], "".join(t[a:b] for a, b in groups[i:j + 1])
    edges = [-1] + [k for a, b in sorted(taken) for k in (a, b)] + [len(groups)]
    for lo, hi in zip(edges[::2], edges[1::2]):
        stretch = groups[lo + 1:hi]
        first = lo == -1
        if stretch and _phone(t, stretch, plus and first):
            yield ("phone", start if first else stretch[0][0], stretch[-1][1],
                   ("+" if plus and first else "") + "".join(t[a:b] for a, b in stretch))


def _phone(t: str, groups: list[tuple[int, int]], plus: bool) -> bool:
    digits = sum(b - a for a, b in groups)
    first = t[groups[0][0]:groups[0][1]]
    if len(groups) == 2 and t[groups[0][1]:groups[1][0]] == "." and (first == "0" or first[0] != "0"):
        return False  # a decimal number: 3.14159265, 0.1234567 (but 0800.1234 is a phone number)
    idd = 3 if first.startswith("011") else 2 if first.startswith("00") else 0  # an international prefix
    # E.164: at most 15 digits, country code included (the prefix dialled before it is not part of it).
    return (6 if plus or idd else 7) <= digits - idd <= 15


def _emails(t: str):
    for at in re.finditer("@", t):
        i = at.start()
        start = i
        while start > 0 and i - start < MAX_LOCAL and _local_char(t[start - 1]):
            start -= 1
        while start < i and t[start] == ".":
            start += 1
        end = i + 1
        while end < len(t) and end - i <= MAX_DOMAIN and _domain_char(t[end]):
            end += 1
        while end > i + 1 and t[end - 1] in ".-":
            end -= 1
        labels = t[i + 1:end].split(".")
        if start == i or len(labels) < 2 or not all(labels) or not _tld(labels[-1]):
            continue
        yield "email", start, end, t[start:end].lower()


def _local_char(c: str) -> bool:
    return c.isalnum() or c in _LOCAL_PUNCT or unicodedata.category(c)[0] == "M"


def _domain_char(c: str) -> bool:
    return c.isalnum() or c in "-." or unicodedata.category(c)[0] == "M"


def _tld(label: str) -> bool:
    if label.lower().startswith("xn--"):
        return len(label) > 4
    return len(label) >= 2 and all(c.isalpha() or unicodedata.category(c)[0] == "M" for c in label)


def _find(norm: Normalized) -> list[Span]:
    t = norm.text
    found = [*_ibans(t), *_runs(t), *_emails(t)]
    chosen: list[tuple[int, int, str, str]] = []  # (start, end, kind, value), in order, not overlapping
    for kind, a, b, value in sorted(found, key=lambda f: (KINDS.index(f[0]), f[1])):
        k = bisect.bisect_left(chosen, (a,))
        if (k == 0 or chosen[k - 1][1] <= a) and (k == len(chosen) or chosen[k][0] >= b):
            chosen.insert(k, (a, b, kind, value))
    spans = []
    for a, b, kind, value in chosen:
        start, end = norm.span(a, b)
        spans.append(Span(kind, start, end, norm.original[start:end], value))
    return spans


def find_pii(text: str) -> list[Span]:
    """Non-overlapping spans of personal data in `text`, in order (the more specific kind wins an overlap)."""
    return _find(normalize(text))


@dataclass(frozen=True)
class Findings:
    """Personal data in several texts read as one (a request's messages, tool arguments, stop strings): data
    split across two of them is found too. Spans are over the texts joined by a space."""

    texts: tuple[str, ...]
    spans: tuple[Span, ...]
    offsets: tuple[int, ...] = ()  # where each text starts in the joined text
    ends: tuple[int, ...] = ()  # where each span ends (spans are in order and do not overlap)

    @property
    def count(self) -> int:
        return len(self.spans)

    def pieces(self, i: int) -> list[tuple[int, int, Span]]:
        """(start, end, span) of each span's part that lies in texts[i], in order."""
        start, end = self.offsets[i], self.offsets[i] + len(self.texts[i])
        k = bisect.bisect_right(self.ends, start)
        out = []
        while k < len(self.spans) and self.spans[k].start < end:
            s = self.spans[k]
            if s.end > start:
                out.append((max(s.start, start) - start, min(s.end, end) - start, s))
            k += 1
        return out


def scan(texts: Sequence[str]) -> Findings:
    """The privacy gate: personal data in `texts`, read in order as one text."""
    texts = tuple(texts)
    offsets, at = [], 0
    for t in texts:
        offsets.append(at)
        at += len(t) + 1
    spans = tuple(find_pii(" ".join(texts)))
    return Findings(texts, spans, tuple(offsets), tuple(s.end for s in spans))
