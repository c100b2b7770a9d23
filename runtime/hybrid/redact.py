"""Personal data out as placeholders, back in the reply: what `--redact` sends to the fallback."""
from __future__ import annotations

import re

from .normalize import normalize
from .pii import Findings, scan

# What a placeholder looks like (any case: a model may change it), to escape the user's own lookalikes.
LOOKALIKE = re.compile(r"\[(?:EMAIL|PHONE|CARD|IBAN|TEXT)_\d+\]", re.IGNORECASE)


class Redactor:
    """Replaces personal data with placeholders ([EMAIL_1] ...) and puts it back into replies.

    One Redactor per conversation: the same address gets the same placeholder in every message. Text that
    already looks like a placeholder ("[EMAIL_1]" typed by the user, or in a document) is sent as a
    placeholder of its own ([TEXT_1]) and restored as it was typed: a reply can only ever turn the
    placeholders this Redactor issued back into the data they stand for."""

    def __init__(self):
        self.placeholders: dict[str, str] = {}  # placeholder -> original
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def _issue(self, kind: str, value: str, original: str) -> str:
        key = (kind, value)
        if key not in self._by_value:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"[{kind.upper()}_{self._counts[kind]}]"
            self._by_value[key] = placeholder
            self.placeholders[placeholder] = original
        return self._by_value[key]

    def redact(self, text: str) -> str:
        return self.redact_all(scan([text]))[0]

    def redact_all(self, findings: Findings) -> list[str]:
        """Each of the scanned texts with its personal data (and placeholder lookalikes) replaced."""
        out = []
        for i, text in enumerate(findings.texts):
            cuts = [(a, b, self._issue(s.kind, s.value or s.text, s.text)) for a, b, s in findings.pieces(i)]
            norm = normalize(text)  # a full-width ［EMAIL_1］ is a lookalike too
            for m in LOOKALIKE.finditer(norm.text):
                a, b = norm.span(*m.span())
                if all(b <= c[0] or a >= c[1] for c in cuts):
                    cuts.append((a, b, self._issue("text", text[a:b], text[a:b])))
            parts, pos = [], 0
            for a, b, placeholder in sorted(cuts):
                parts += [text[pos:a], placeholder]
                pos = b
            parts.append(text[pos:])
            out.append("".join(parts))
        return out

    def restore(self, text: str) -> str:
        """`text` with every issued placeholder replaced by its original, in one pass (an original that looks
        like a placeholder is not replaced again)."""
        if not self.placeholders:
            return text
        pattern = re.compile("|".join(re.escape(p) for p in self.placeholders))
        return pattern.sub(lambda m: self.placeholders[m.group()], text)
