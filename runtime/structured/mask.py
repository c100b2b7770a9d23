"""Token masks as numpy: llguidance's bitmask (one bit per token id, little-endian 32-bit words) applied to
a logits row.

Applying a mask to a 262k-entry row costs more than computing it (FACTS: llguidance's reference
`apply_token_bitmask_inplace` 3.5 ms at 262k; unpackbits + putmask about a third of that). So the
samplers first check the token they would pick anyway (`allows`), and mask the row only when they must.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Bitmask"]

_NEG_INF = np.float32(-np.inf)


class Bitmask:
    """One request's mask buffer over a vocabulary of `vocab` ids (reused every step: no allocation)."""

    def __init__(self, vocab: int):
        self.vocab = vocab
        self.words = np.zeros((vocab + 31) // 32, np.int32)  # what llguidance writes into
        self._bytes = self.words.view(np.uint8)

    def fill(self, matcher) -> None:
        """Compute the matcher's mask of allowed next tokens into the buffer (releases the GIL)."""
        matcher.unsafe_compute_mask_ptr(self.words.ctypes.data, self.words.nbytes)

    def allows(self, token: int) -> bool:
        """Whether `token` is allowed: one bit test, whatever the vocabulary."""
        return 0 <= token < self.vocab and bool((int(self.words[token >> 5]) >> (token & 31)) & 1)

    def allows_all(self, tokens: np.ndarray) -> bool:
        """Whether every id in `tokens` (a few dozen, e.g. a top-k set) is allowed."""
        tokens = np.asarray(tokens, np.int64)
        return bool(np.all((self.words[tokens >> 5] >> (tokens & 31)) & 1))

    def allowed(self) -> np.ndarray:
        """[vocab] bool: True where the token is allowed."""
        return np.unpackbits(self._bytes, count=self.vocab, bitorder="little").view(bool)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """A copy of `logits` [vocab] with every disallowed entry at -inf."""
        out = np.array(logits, dtype=np.float32, copy=True)
        if out.shape[-1] != self.vocab:
            raise ValueError(f"logits have {out.shape[-1]} entries, the mask {self.vocab}")
        np.putmask(out, ~self.allowed(), _NEG_INF)
        return out

    def only(self) -> int | None:
        """The one allowed token when exactly one is (then sampling has nothing to choose), else None."""
        nonzero = np.flatnonzero(self.words)
        if len(nonzero) != 1:
            return None
        word = int(self.words[nonzero[0]]) & 0xFFFFFFFF
        if word & (word - 1):
            return None
        return int(nonzero[0]) * 32 + word.bit_length() - 1
