"""The BPE model of the pure-Python tokenizer: one pre-tokenized word -> token ids.

Mirrors Hugging Face `tokenizers`' BPE: a word starts as one symbol per character (unknown characters
become `<0xNN>` byte tokens with `byte_fallback`, else the unk token), then merges are applied
lowest rank first, ties broken leftmost, through a heap over a linked list of symbols. Applying them in
exactly that order matters: a different order can give different ids for the same word.
"""
from __future__ import annotations

import heapq

import numpy as np

from edge_sdk.errors import BundleError

from .safety import MAX_VOCAB

# Words longer than this are not cached (HF does the same); a long SentencePiece chunk is rarely seen twice.
_CACHE_MAX_WORD = 256
_CACHE_MAX_ENTRIES = 100_000
# A pair of ids, or a rank and an id, packed into one int: every id is below MAX_VOCAB (safety.py checks).
_SHIFT = (MAX_VOCAB - 1).bit_length()
_MASK = (1 << _SHIFT) - 1


def merge_table(vocab: dict[str, int], merges) -> np.ndarray:
    """(left id, right id, merged id) of each merge, in rank order, as an int32 [n, 3] table. Two spellings
    exist: "a b" (older files) and ["a", "b"] (tokenizers >= 0.20). BundleError for a merge whose tokens
    are not in the vocab."""
    rows = []
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        try:
            rows.append((vocab[left], vocab[right], vocab[left + right]))
        except KeyError as exc:
            raise BundleError(f"tokenizer.json merge #{rank} {merge!r} uses a token that is not in the vocab "
                              f"({exc}); the file is corrupt, re-export the bundle.") from None
    return np.asarray(rows, dtype=np.int32).reshape(-1, 3)


class BPEModel:
    """Byte-pair encoding over a vocab and ranked merges, as read from tokenizer.json's `model`."""

    def __init__(self, spec: dict, merge_table=None):
        """`merge_table`: the merges already resolved to (left, right, merged) ids, an int32 array in rank
        order (compact.py); otherwise they are resolved from spec["merges"] on first use."""
        if spec.get("type", "BPE") != "BPE":
            raise BundleError(f"tokenizer.json model type {spec.get('type')!r} is not supported by the pure-Python "
                              "tokenizer (only BPE); install `tokenizers` or re-export the bundle.")
        if spec.get("dropout") not in (None, 0, 0.0):
            raise BundleError("tokenizer.json sets BPE dropout, which makes encoding random; "
                              "set model.dropout to null when exporting.")
        if spec.get("continuing_subword_prefix") or spec.get("end_of_word_suffix"):
            raise BundleError("tokenizer.json uses continuing_subword_prefix/end_of_word_suffix, which the "
                              "pure-Python BPE does not support; install `tokenizers` or re-export.")
        self.vocab: dict[str, int] = spec["vocab"]
        self.byte_fallback = bool(spec.get("byte_fallback", False))
        self.fuse_unk = bool(spec.get("fuse_unk", False))
        self.ignore_merges = bool(spec.get("ignore_merges", False))
        unk = spec.get("unk_token")
        self.unk_id = self.vocab.get(unk) if unk is not None else None
        if unk is not None and self.unk_id is None:
            raise BundleError(f"tokenizer.json: the BPE unk_token {unk!r} is not in the vocab.")
        self._raw_merges = spec.get("merges", [])
        self._merge_table = merge_table
        # (left << _SHIFT | right) -> (rank << _SHIFT | merged id), built on first use (_build).
        self._merges: dict[int, int] | None = None
        self._byte_ids: list[int | None] | None = None
        self._cache: dict[str, list[int]] = {}

    def _build(self) -> None:
        vocab = self.vocab
        self._byte_ids = [vocab.get(f"<0x{b:02X}>") for b in range(256)]
        table = self._merge_table if self._merge_table is not None else merge_table(vocab, self._raw_merges)
        self._merge_table = self._raw_merges = None  # the parsed JSON pairs: tens of MB for a large vocabulary
        left, right, merged = (table[:, k].tolist() for k in range(3))
        del table
        # One int per pair and one per (rank, merged id), not two tuples of two ints: a third of the memory
        # (SmolLM2's 48,900 merges: 14 -> 5 MB). A pair listed twice keeps its last rank, as HF's map does.
        self._merges = {(a << _SHIFT) | b: (rank << _SHIFT) | m
                        for rank, (a, b, m) in enumerate(zip(left, right, merged))}

    def tokenize(self, word: str) -> list[int]:
        """Token ids of one pre-tokenized word."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if self._merges is None:
            self._build()
        if self.ignore_merges and word in self.vocab:
            ids = [self.vocab[word]]
        else:
            ids = self._merge(self._symbols(word))
        if len(word) < _CACHE_MAX_WORD:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[word] = ids
        return ids

    def _symbols(self, word: str) -> list[int]:
        vocab, out = self.vocab, []
        pending_unk = False  # an unk not yet emitted (fuse_unk joins a run of unknown chars into one)
        for ch in word:
            tid = vocab.get(ch)
            if tid is None and self.byte_fallback:
                byte_ids = [self._byte_ids[b] for b in ch.encode("utf-8")]
                if None not in byte_ids:
                    # HF leaves a pending unk pending here (it is emitted after these bytes); mirror that.
                    out.extend(byte_ids)
                    continue
            if tid is None:
                if self.unk_id is None:
                    continue  # HF drops characters it cannot represent when there is no unk token
                if pending_unk and not self.fuse_unk:
                    out.append(self.unk_id)
                pending_unk = True
                continue
            if pending_unk:
                out.append(self.unk_id)
                pending_unk = False
            out.append(tid)
        if pending_unk:
            out.append(self.unk_id)
        return out

    def _merge(self, ids: list[int]) -> list[int]:
        n = len(ids)
        if n < 2:
            return ids
        merges, shift, mask = self._merges, _SHIFT, _MASK
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prev = list(range(-1, n - 1))
        heap = []
        for i in range(n - 1):
            m = merges.get((ids[i] << shift) | ids[i + 1])
            if m is not None:
                heap.append((m >> shift, i, m & mask))
        heapq.heapify(heap)
        while heap:
            _rank, i, new_id = heapq.heappop(heap)
            left = ids[i]
            j = nxt[i]
            if left < 0 or j < 0:
                continue  # the symbol was merged away, or has no right neighbour any more
            m = merges.get((left << shift) | ids[j])
            if m is None or m & mask != new_id:
                continue  # stale entry: the pair at this position changed since it was pushed
            ids[i], ids[j] = new_id, -1
            k = nxt[j]
            nxt[i] = k
            if k >= 0:
                prev[k] = i
                m = merges.get((new_id << shift) | ids[k])
                if m is not None:
                    heapq.heappush(heap, (m >> shift, i, m & mask))
            p = prev[i]
            if p >= 0:
                m = merges.get((ids[p] << shift) | new_id)
                if m is not None:
                    heapq.heappush(heap, (m >> shift, p, m & mask))
        return [t for t in ids if t >= 0]
