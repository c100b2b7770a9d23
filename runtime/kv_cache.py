"""The KV cache: preallocated buffers with verbs.

One buffer per layer and kind, shaped [1, kv_heads, capacity, stored_head_dim], allocated once as
OrtValues and bound to both the graph's `past_*` input and `present_*` output: GroupQueryAttention
writes the new entries in place, so a decode step copies nothing. The cache itself only tracks how many
positions are valid (`offset`); `rewind` and `reset` are O(1) because stale entries past `offset`
are never read (attention is bounded by `seqlens_k`).

A quantized cache (the manifest's `kv_cache.format`, `edge-sdk export --kv-cache int8|int4`) is the same
buffers in another element type: GroupQueryAttention quantizes each new key and value with the graph's
own static scales as it writes them and dequantizes what it reads, so the verbs do not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.errors import ContextLengthError


@dataclass(frozen=True)
class KVFormat:
    """How one cached value is stored (onnxruntime 1.32 GroupQueryAttention, CPU)."""

    name: str  # the manifest's kv_cache.format
    dtype: str | None  # buffer element type; None: the manifest's kv_cache.dtype (float32 or float16)
    values_per_element: int  # int4 packs two values per byte (low nibble first, value + 8)
    bits: int | None  # bits per value (None: a float type)


# Symmetric, per channel, saturating at [-2^(bits-1), 2^(bits-1) - 1]: measured against a numpy model of
# the op (docs/benchmarks.md, the KV-cache table).
KV_FORMATS = {f.name: f for f in (KVFormat("float", None, 1, None), KVFormat("int8", "int8", 1, 8),
                                  KVFormat("int4", "uint8", 2, 4))}


def kv_format(kv: dict[str, Any]) -> KVFormat:
    """The format of a manifest's kv_cache section (bundles before quantized caches say only `dtype`)."""
    return KV_FORMATS[kv.get("format", "float")]


# The first onnxruntime whose CPU GroupQueryAttention was measured to quantize the cache as described above.
MIN_ORT_FOR_QUANTIZED = (1, 32)


def check_supported(kv: dict[str, Any], version: str | None = None) -> None:
    """DeviceError if this onnxruntime cannot run the manifest's KV-cache format (an older one would fail
    inside the graph, or ignore the scales)."""
    if kv_format(kv).bits is None:
        return
    version = version or ort.__version__
    have = tuple(int(x) if x.isdigit() else 0 for x in version.split(".")[:2])
    if have < MIN_ORT_FOR_QUANTIZED:
        from edge_sdk.errors import DeviceError

        need = ".".join(map(str, MIN_ORT_FOR_QUANTIZED))
        raise DeviceError(f"this bundle's KV cache is {kv['format']} (quantized), which needs onnxruntime >= {need}; "
                          f"this device has {version}: upgrade onnxruntime, or export with --kv-cache float")


def stored_head_dim(kv: dict[str, Any]) -> int:
    """The last dimension of a cache buffer: head_dim values, packed per the format."""
    return kv["head_dim"] // kv_format(kv).values_per_element


def bytes_per_token(kv: dict[str, Any]) -> int:
    """Cache bytes one token position takes over all layers, keys and values."""
    return 2 * kv["num_layers"] * kv["num_kv_heads"] * stored_head_dim(kv) * np.dtype(kv.get("dtype", "float32")).itemsize


class KVCache:
    """Preallocated cache buffers and the verbs append / rewind / reset over them.

    `head_dim` is the buffer's last dimension (for an int4 cache, half the model's head_dim)."""

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
        check_supported(kv)
        return cls(kv["num_layers"], kv["num_kv_heads"], stored_head_dim(kv),
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
