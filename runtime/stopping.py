"""Stop strings over streamed text.

Text arrives in pieces (one detokenized token at a time), and a stop string can straddle pieces:
"<|im" then "_end|>". ``StopStrings`` emits text as soon as it can no longer be the start of a stop
string and holds back the rest, so the stop string itself never reaches the user.

Stop strings come from outside (API requests, the command line), so their cost is bounded twice:
by design, the matcher's memory and work are linear in the stop strings' total length (one
Knuth-Morris-Pratt table per string, each character of the stream looked at once per string), and
by limit, at most MAX_STOP_STRINGS strings of at most MAX_STOP_CHARS characters each.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["StopStrings", "MAX_STOP_STRINGS", "MAX_STOP_CHARS", "check_stop_limits"]

# Stop strings are delimiters ("</s>", "\n\nUser:"): a few, and short. OpenAI's API takes up to 4;
# these bounds leave room for more while keeping the held-back text (at most MAX_STOP_CHARS - 1
# characters) and the per-token work small. The server and the CLI import them.
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024


def check_stop_limits(stops: Sequence[str]) -> None:
    """ValueError if there are more than MAX_STOP_STRINGS stop strings or one is longer than MAX_STOP_CHARS."""
    if len(stops) > MAX_STOP_STRINGS:
        raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings are accepted, got {len(stops)}")
    for i, s in enumerate(stops):
        if isinstance(s, str) and len(s) > MAX_STOP_CHARS:
            raise ValueError(f"stop string {i} has {len(s)} characters; a stop string is at most "
                             f"{MAX_STOP_CHARS} characters")


def _failure(s: str) -> list[int]:
    """KMP failure table: fail[i] = length of the longest proper prefix of s[:i+1] that is also its suffix."""
    fail = [0] * len(s)
    k = 0
    for i in range(1, len(s)):
        while k and s[i] != s[k]:
            k = fail[k - 1]
        if s[i] == s[k]:
            k += 1
        fail[i] = k
    return fail


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
        check_stop_limits(stops)
        self.stops: tuple[str, ...] = tuple(dict.fromkeys(stops))  # de-duplicated, order kept
        self._fail = [_failure(s) for s in self.stops]
        # _matched[k]: length of the longest suffix of the stream so far that is a proper prefix of
        # stops[k]. The stream's last max(_matched) characters are held back: the next piece may
        # complete a stop string that starts there, and nothing before them ever can.
        self._matched = [0] * len(self.stops)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add ``piece``; return ``(text_safe_to_emit, stopped)``."""
        if self.stopped:
            return "", True
        text = self._held + piece
        base = len(self._held)
        for j, ch in enumerate(piece):
            done = 0  # the longest stop string completed by this character
            for k, s in enumerate(self.stops):
                q, fail = self._matched[k], self._fail[k]
                while q and s[q] != ch:
                    q = fail[q - 1]
                if s[q] == ch:
                    q += 1
                if q == len(s):
                    done = max(done, q)
                self._matched[k] = q
            if done:
                # The stop string that completes first wins (ties: the longer one), i.e. the one
                # token-by-token streaming would have hit first, so the result does not depend on how
                # the text was split into pieces. The user sees nothing from its start on.
                self._held = ""
                self.stopped = True
                return text[: base + j + 1 - done], True
        keep = max(self._matched, default=0)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """Release the held-back text (call once the stream ended without a stop)."""
        out, self._held = ("" if self.stopped else self._held), ""
        self._matched = [0] * len(self.stops)
        return out

    def reset(self) -> None:
        """Forget everything, ready for a new stream."""
        self._held = ""
        self._matched = [0] * len(self.stops)
        self.stopped = False
