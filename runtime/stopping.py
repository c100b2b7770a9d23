"""Stop strings over streamed text.

Text arrives in pieces (one detokenized token at a time), and a stop string can straddle pieces:
"<|im" then "_end|>". ``StopStrings`` emits text as soon as it can no longer be the start of a stop
string and holds back the rest, so the stop string itself never reaches the user.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["StopStrings"]


class StopStrings:
    """Watch a text stream for any of ``stops``.

    >>> s = StopStrings(["</s>"])
    >>> s.feed("Hello</"), s.feed("s> more")
    (('Hello', False), ('', True))

    ``feed(piece)`` returns ``(emit, stopped)``: ``emit`` is text safe to show now; ``stopped`` is
    True once a stop string completed, in which case the stop string and everything after it are
    dropped and later calls return ``("", True)``. ``flush()`` releases the held-back text at the
    end of generation (nothing if stopped).
    """

    def __init__(self, stops: Sequence[str]):
        if isinstance(stops, str):  # a bare string would be read as a list of characters
            raise ValueError("stops must be a sequence of strings, not a single string: use [stop]")
        stops = list(stops)
        for i, s in enumerate(stops):
            if not isinstance(s, str) or not s:
                raise ValueError(f"stop string {i} must be a non-empty string, got {s!r}")
        self.stops: tuple[str, ...] = tuple(dict.fromkeys(stops))  # de-duplicated, order kept
        # Every proper prefix of a stop string: a suffix of the text equal to one of them must be
        # held back, because the next piece may complete the stop string.
        self._prefixes = {s[:n] for s in self.stops for n in range(1, len(s))}
        self._longest = max((len(s) for s in self.stops), default=0)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add ``piece``; return ``(text_safe_to_emit, stopped)``."""
        if self.stopped:
            return "", True
        text = self._held + piece
        # The stop string that completes first wins (ties: the longer one), i.e. the one token-by-
        # token streaming would have hit first, so the result does not depend on how the text
        # was split into pieces. The user sees nothing from its start on.
        cut = self._first_stop(text)
        if cut >= 0:
            self._held = ""
            self.stopped = True
            return text[:cut], True
        keep = self._held_suffix_length(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """Release the held-back text (call once the stream ended without a stop)."""
        out, self._held = ("" if self.stopped else self._held), ""
        return out

    def reset(self) -> None:
        """Forget everything, ready for a new stream."""
        self._held = ""
        self.stopped = False

    def _first_stop(self, text: str) -> int:
        best_end, best_start = -1, -1
        for s in self.stops:
            i = text.find(s)
            if i < 0:
                continue
            end = i + len(s)
            if best_end < 0 or end < best_end or (end == best_end and i < best_start):
                best_end, best_start = end, i
        return best_start

    def _held_suffix_length(self, text: str) -> int:
        # Longest suffix of text that is a proper prefix of a stop string. It starts at the
        # earliest position that could still turn into a match, so nothing before it ever can.
        for n in range(min(len(text), self._longest - 1), 0, -1):
            if text[-n:] in self._prefixes:
                return n
        return 0
