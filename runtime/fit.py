"""Will a bundle fit in this device's memory? Asked before onnxruntime allocates anything.

A phone's low-memory killer ends an app that grows past what the system can spare, usually in the middle
of a load or a long prompt, with no message. So `edge_sdk.load` first estimates what the bundle will take
here and compares it with what the device has available (`MemAvailable`, Linux and Android), and refuses
with the figures and what would fit instead (`DeviceFitError`); `force=True` (`--force-load`) loads anyway.

The estimate (`memory_need`), per part, from the manifest and the files' sizes only:
- weights: onnxruntime packs MatMulNBits weights into its own layout while the session is created (4-bit:
  ~1.4x their bytes, docs/benchmarks.md), reading the weights file as it goes, then unmaps what it packed.
  The factors below are measured on SmolLM2-135M bundles (int4-b32 and fp32): peak and after-load memory
  per byte of the weights file.
- KV cache: bytes per token (its format: float, int8, int4) x the context the cache is sized for.
- activations: one prefill pass of `chunk` rows attending over the whole context (its attention scores,
  heads x chunk x context floats, dominate at long contexts) plus the hidden states it flows through.
- tokenizer: the pure-Python tokenizer's tables, per vocabulary entry.
The process that asks already holds Python, numpy and onnxruntime: they are not part of the need.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1 << 20

# Resident bytes per byte of the weights file (measured, `benchmarks/fit_memory.py`): while the session is
# created (packed copies + file pages being read) and once it is. fp32 MatMul weights are prepacked at ~1x.
# 4- and 8-bit blocks, the int4 SmolLM2-135M bundle (107 MB of weights, 22 MB of tokenizer): 253 MB more at the
# load's peak, 210 MB once loaded. (With 1.40 once loaded the estimate came out 14-19 % under the measured
# full-context peak: docs/benchmarks.md, "Fit before load".)
LOAD_PEAK_PER_BYTE = {"float": 1.05, "blocks": 2.15}
AFTER_LOAD_PER_BYTE = {"float": 0.90, "blocks": 1.75}
TOKENIZER_BYTES_PER_ENTRY = 480  # the pure tokenizer's resident tables: 22 MB for SmolLM2's 49152 entries
ARENA_SLACK = 1.25  # onnxruntime's arena rounds its blocks up and keeps them


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes a bundle will take on top of the running process, part by part."""

    load_peak: int  # while onnxruntime creates the session: packed weights + the weights file being read
    weights: int  # after load: onnxruntime's packed copies of the weights
    kv_cache: int  # the cache at `context` tokens (its pages become resident as positions are written)
    activations: int  # a prefill pass of `chunk` rows at full context
    tokenizer: int
    context: int  # tokens the KV cache is sized for
    chunk: int  # rows per prefill pass
    kv_format: str

    @property
    def running(self) -> int:
        """Memory once the context is full and a prompt is being prefilled."""
        return self.weights + self.kv_cache + self.activations + self.tokenizer

    @property
    def total(self) -> int:
        """The most the bundle takes at any moment: the load peak or the full-context run, whichever is larger."""
        return max(self.load_peak + self.tokenizer, self.running)

    def breakdown(self) -> str:
        return (f"weights {self.weights / MB:.0f} MB once loaded ({self.load_peak / MB:.0f} MB while loading), "
                f"KV cache {self.kv_cache / MB:.0f} MB at {self.context} tokens ({self.kv_format}), activations "
                f"{self.activations / MB:.0f} MB (prefill passes of {self.chunk} tokens), tokenizer "
                f"{self.tokenizer / MB:.0f} MB")

    def as_dict(self) -> dict[str, Any]:
        return {"total_mb": round(self.total / MB, 1), "load_peak_mb": round(self.load_peak / MB, 1),
                "weights_mb": round(self.weights / MB, 1), "kv_cache_mb": round(self.kv_cache / MB, 1),
                "activations_mb": round(self.activations / MB, 1), "tokenizer_mb": round(self.tokenizer / MB, 1),
                "context": self.context, "prefill_chunk": self.chunk, "kv_format": self.kv_format}


def weight_bytes(manifest: dict[str, Any]) -> int:
    """Bytes of the files the graph(s) load: graphs and their external weights, not tokenizer or adapters."""
    files = manifest.get("files") or {}
    skip = {manifest["tokenizer"].get("file"), manifest["tokenizer"].get("compact_file"),
            (manifest.get("chat_template") or {}).get("file")}
    skip |= {spec.get("file") for spec in ((manifest.get("lora") or {}).get("adapters") or {}).values()}
    return sum(int(info.get("bytes", 0)) for name, info in files.items() if name not in skip)


def activation_bytes(manifest: dict[str, Any], context: int, chunk: int) -> int:
    """A prefill pass of `chunk` rows at full context: attention scores [heads, chunk, context] and the
    widest hidden states ([chunk, 2 x intermediate] after the gate/up projection, q/k/v, the residual)."""
    arch = manifest["architecture"]
    heads = int(arch.get("num_attention_heads") or 1)
    hidden = int(arch.get("hidden_size") or 0)
    inter = int(arch.get("intermediate_size") or 4 * hidden)
    rows = min(chunk, context)
    scores = heads * rows * context * 4
    states = rows * (3 * inter + 6 * hidden) * 4
    logits = int(arch["vocab_size"]) * 4
    return int((scores + states + logits) * ARENA_SLACK)


def memory_need(manifest: dict[str, Any], context: int | None = None, chunk: int | None = None) -> MemoryNeed:
    """What `manifest`'s bundle takes when loaded with a KV cache of `context` tokens (default: the graph's
    max_context) and prefill passes of `chunk` rows (default: the engine's)."""
    from .engine import DEFAULT_PREFILL_CHUNK
    from .kv_cache import bytes_per_token, kv_format

    graph, kv = manifest["graph"], manifest["kv_cache"]
    context = int(context or graph["max_context"])
    if graph["flavour"] == "static":  # fixed windows and context, decided at export
        chunk, context = int(graph["prefill_chunk"]), int(graph["max_context"])
    chunk = int(chunk or DEFAULT_PREFILL_CHUNK)
    kind = "float" if manifest.get("quantization", {}).get("bits") is None else "blocks"
    size = weight_bytes(manifest)
    return MemoryNeed(
        load_peak=int(size * LOAD_PEAK_PER_BYTE[kind]), weights=int(size * AFTER_LOAD_PER_BYTE[kind]),
        kv_cache=bytes_per_token(kv) * context, activations=activation_bytes(manifest, context, chunk),
        tokenizer=int(manifest["architecture"]["vocab_size"]) * TOKENIZER_BYTES_PER_ENTRY,
        context=context, chunk=chunk, kv_format=kv_format(kv).name)


@dataclass(frozen=True)
class Available:
    """Memory the device can give this process now, and where the figure comes from."""

    bytes: int | None  # None: this platform does not say
    source: str  # "MemAvailable", "cgroup memory.max", or why it is unknown


def available_memory(meminfo: str = "/proc/meminfo", cgroup: str = "/sys/fs/cgroup") -> Available:
    """`MemAvailable` from /proc/meminfo (Linux, Android), or less if this process's cgroup (a container)
    allows less; unknown elsewhere (macOS, Windows, iOS), where nothing is refused."""
    if not (sys.platform.startswith("linux") or sys.platform == "android"):
        return Available(None, f"unknown on {sys.platform} (no /proc/meminfo)")
    found = None
    try:
        with open(meminfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = Available(int(line.split()[1]) * 1024, "MemAvailable")
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        return Available(None, "unknown (no MemAvailable in /proc/meminfo: a kernel before 3.14?)")
    limit = _cgroup_room(Path(cgroup))
    if limit is not None and limit < found.bytes:
        return Available(limit, "cgroup memory.max")
    return found


def _cgroup_room(root: Path) -> int | None:
    """memory.max - memory.current of a cgroup v2 this process runs in with a limit; None without one."""
    try:
        rel = next((line.split("::", 1)[1].strip() for line in open("/proc/self/cgroup", encoding="ascii")
                    if line.startswith("0::")), None)
        if rel is None:
            return None
        folder = root / rel.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text().strip()))
    except (OSError, ValueError, StopIteration):
        return None


def check_fit(manifest: dict[str, Any], context: int | None = None, chunk: int | None = None, *,
              available: Available | None = None, force: bool = False) -> MemoryNeed:
    """DeviceFitError (with what would fit) if the bundle needs more memory than the device has available,
    unless `force`; returns the estimate. Unknown available memory (not Linux/Android) is never refused."""
    need = memory_need(manifest, context, chunk)
    available = available if available is not None else available_memory()
    if force or available.bytes is None or need.total <= available.bytes:
        return need
    from edge_sdk.errors import DeviceFitError

    raise DeviceFitError(
        f"{manifest.get('name') or 'this bundle'} needs about {need.total / MB:.0f} MB here ({need.breakdown()}) but "
        f"the device has {available.bytes / MB:.0f} MB available ({available.source}). "
        + _suggestions(manifest, need, available.bytes)
        + " To load it anyway: force=True (API) or --force-load (CLI); the system may then end the process.")


def _suggestions(manifest: dict[str, Any], need: MemoryNeed, available: int) -> str:
    hints = []
    if manifest["graph"]["flavour"] == "fused":
        fits = next((c for c in range((need.context - 1) // 256 * 256, 255, -256)
                     if memory_need(manifest, c, need.chunk).total <= available), None)
        if fits:
            hints.append(f"a smaller context: max_context={fits} (API) or --max-context {fits} (CLI)")
        if need.kv_format == "float":
            hints.append("re-export with a quantized KV cache: edge-sdk export ... --kv-cache int8 (a quarter of the "
                         f"{need.kv_cache / MB:.0f} MB)")
    if manifest.get("quantization", {}).get("bits") in (None, 8):
        hints.append("re-export with a smaller recipe: edge-sdk export ... --recipe int4-b32")
    return ("What would help: " + "; ".join(hints) + "." if hints
            else "Nothing smaller is available for this bundle: use a smaller model or free memory.")


def check_context(manifest: dict[str, Any], max_context: int | None) -> int | None:
    """A load-time context for the KV cache: 16 to the graph's max_context, fused bundles only (a static
    graph's shapes fix its context at export). None keeps the bundle's."""
    if max_context is None:
        return None
    limit = int(manifest["graph"]["max_context"])
    if isinstance(max_context, bool) or not isinstance(max_context, int) or not 16 <= max_context <= limit:
        raise ValueError(f"max_context must be an integer from 16 to the bundle's maximum context {limit}, "
                         f"got {max_context!r}")
    if manifest["graph"]["flavour"] != "fused" and max_context != limit:
        raise ValueError(f"this bundle's {manifest['graph']['flavour']} graphs fix their context at {limit} tokens; "
                         "re-export with --max-context to change it")
    return max_context
