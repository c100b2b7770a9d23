"""The WordPiece model of the pure-Python tokenizer (BERT-family encoders, e.g. all-MiniLM-L6-v2).

Mirrors Hugging Face `tokenizers`' WordPiece: one pre-tokenized word -> the longest vocab entry that
starts it, then the longest `##`-prefixed entry that continues it, and so on; a word with no such
split, or longer than `max_input_chars_per_word` characters, is one unknown token.
"""
from __future__ import annotations

from edge_sdk.errors import BundleError

_CACHE_MAX_ENTRIES = 100_000


class WordPieceModel:
    """Greedy longest-match-first over a vocab, as read from tokenizer.json's `model`."""

    def __init__(self, spec: dict):
        if spec.get("type") != "WordPiece":
            raise BundleError(f"tokenizer.json model type {spec.get('type')!r} is not WordPiece")
        self.vocab: dict[str, int] = spec["vocab"]
        if not isinstance(self.vocab, dict):
            raise BundleError("tokenizer.json: a WordPiece vocab must be an object of token -> id")
        unk = spec.get("unk_token", "[UNK]")
        if unk not in self.vocab:
            raise BundleError(f"tokenizer.json: the WordPiece unk_token {unk!r} is not in the vocab.")
        self.unk_id = self.vocab[unk]
        self.prefix = spec.get("continuing_subword_prefix", "##")
        if not isinstance(self.prefix, str):
            raise BundleError("tokenizer.json: continuing_subword_prefix must be a string")
        self.max_chars = int(spec.get("max_input_chars_per_word", 100))
        # The longest vocab entry bounds the inner search, so a long word costs O(len * longest), not O(len^2).
        self._longest = max((len(t) for t in self.vocab), default=0)
        self._cache: dict[str, list[int]] = {}

    def tokenize(self, word: str) -> list[int]:
        """Token ids of one pre-tokenized word."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ids = self._split(word)
        if len(self._cache) < _CACHE_MAX_ENTRIES:
            self._cache[word] = ids
        return ids

    def _split(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk_id]
        vocab, prefix, out, start = self.vocab, self.prefix, [], 0
        while start < len(word):
            end = min(len(word), start + self._longest)
            while end > start:
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                tid = vocab.get(piece)
                if tid is not None:
                    out.append(tid)
                    break
                end -= 1
            else:
                return [self.unk_id]  # HF: a word that cannot be split is a single unknown token
            start = end
        return out
