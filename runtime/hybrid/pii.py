"""Personal data in a prompt: found, and replaced by placeholders that are restored in the reply.

Detected (each with a check that keeps ordinary numbers out):
- e-mail addresses;
- phone numbers: international (+ and 7-15 digits), North American (555) 123-4567, and national numbers
  with a trunk 0 (030 1234 5678); a date such as 2026-12-01 does not match;
- payment card numbers: 13-19 digits, spaced or dashed, that pass the Luhn check;
- IBANs: a country code, two check digits and 11-30 letters/digits that pass the ISO 7064 mod-97 check.
The privacy gate errs on the side of keeping a prompt on the device: a false positive costs a cloud
answer, a false negative sends someone's data away.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d ().-]{5,20}\d"              # international
                   r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4}"  # North American
                   r"|0\d{1,4}[ /.-]?\d{3,4}[ .-]?\d{3,5})(?![\w])")          # national, trunk 0
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
KINDS = ("iban", "card", "email", "phone")  # most specific first: a card number also looks like a phone


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _candidates(text: str):
    for m in IBAN.finditer(text):
        if iban_ok(m.group()):
            yield Span("iban", *m.span(), m.group())
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            yield Span("card", *m.span(), m.group())
    for m in EMAIL.finditer(text):
        yield Span("email", *m.span(), m.group())
    for m in PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 7 <= len(digits) <= 15:
            yield Span("phone", *m.span(), m.group())


def find_pii(text: str) -> list[Span]:
    """Non-overlapping spans of personal data in `text`, in order (the more specific kind wins an overlap)."""
    chosen: list[Span] = []
    for span in sorted(_candidates(text), key=lambda s: KINDS.index(s.kind)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


class Redactor:
    """Replaces personal data with placeholders ([EMAIL_1] ...) and puts it back into replies.

    One Redactor per conversation: the same address gets the same placeholder in every message."""

    def __init__(self):
        self.placeholders: dict[str, str] = {}  # placeholder -> original
        self._by_text: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def redact(self, text: str) -> str:
        out, pos = [], 0
        for span in find_pii(text):
            key = (span.kind, span.text)
            if key not in self._by_text:
                self._counts[span.kind] = self._counts.get(span.kind, 0) + 1
                placeholder = f"[{span.kind.upper()}_{self._counts[span.kind]}]"
                self._by_text[key] = placeholder
                self.placeholders[placeholder] = span.text
            out += [text[pos:span.start], self._by_text[key]]
            pos = span.end
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        for placeholder, original in self.placeholders.items():
            text = text.replace(placeholder, original)
        return text
