"""The KV cache: preallocated buffers with verbs.

One buffer per layer and kind, shaped [1, kv_heads, capacity, head_dim], allocated once as OrtValues
and bound to both the graph's `past_*` input and `present_*` output: GroupQueryAttention writes the
new entries in place, so a decode step copies nothing. The cache itself only tracks how many
positions are valid (`offset`); `rewind` and `reset` are O(1) because stale entries past `offset`
are never read (attention is bounded by `seqlens_k`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.errors import ContextLengthError


class KVCache:
    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, capacity: int,
                 past_name: str, present_name: str, dtype=np.float32):
        self.capacity = capacity
        self.offset = 0  # number of valid positions
        shape = (1, num_kv_heads, capacity, head_dim)
        # (past input name, present output name, buffer) for every layer/kind.
        self.slots: list[tuple[str, str, ort.OrtValue]] = []
        # np.zeros maps zero pages lazily: memory becomes resident only as positions are written,
        # so a long maximum context costs address space, not RSS. The OrtValues wrap these arrays
        # without copying; we keep them referenced for as long as the cache lives.
        self._arrays: list[np.ndarray] = []
        for layer in range(num_layers):
            for kind in ("key", "value"):
                arr = np.zeros(shape, dtype=dtype)
                self._arrays.append(arr)
                buf = ort.OrtValue.ortvalue_from_numpy(arr)
                self.slots.append((past_name.format(layer=layer, kind=kind),
                                   present_name.format(layer=layer, kind=kind), buf))

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], capacity: int | None = None) -> "KVCache":
        kv = manifest["kv_cache"]
        return cls(kv["num_layers"], kv["num_kv_heads"], kv["head_dim"],
                   capacity or manifest["graph"]["max_context"], kv["past"], kv["present"],
                   dtype=np.dtype(kv.get("dtype", "float32")))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays)

    def bind(self, io: ort.IOBinding) -> None:
        """Bind every buffer as both past input and present output (done once per binding)."""
        for past, present, buf in self.slots:
            io.bind_ortvalue_input(past, buf)
            io.bind_ortvalue_output(present, buf)

    def check_room(self, n: int) -> None:
        if self.offset + n > self.capacity:
            raise ContextLengthError(
                f"{self.offset} tokens in context + {n} new = {self.offset + n} exceeds the maximum context of "
                f"{self.capacity} tokens; start a new conversation or shorten the prompt"
            )

    def append(self, n: int) -> None:
        """Record that the graph has written `n` new positions."""
        self.check_room(n)
        self.offset += n

    def rewind(self, n: int) -> None:
        """Forget the last `n` positions (e.g. rejected speculative tokens)."""
        if not 0 <= n <= self.offset:
            raise ValueError(f"rewind({n}) with only {self.offset} tokens in the cache")
        self.offset -= n

    def reset(self) -> None:
        self.offset = 0
