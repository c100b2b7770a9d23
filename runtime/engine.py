"""Engines run a bundle's graph(s) one forward pass at a time and own the KV cache.

Every engine has the same small interface, so generation does not care which flavour it drives:

    capacity: int, offset: int
    forward(ids, all_logits=False) -> logits of the last position [vocab] (or [len(ids), vocab])
    rewind(n), reset()

`FusedEngine` drives the CPU ("fused") graph: one graph for prefill and decode, GroupQueryAttention
writing into a preallocated cache bound as both its past input and present output. A long prompt runs
in passes of at most `prefill_chunk` rows (`split_rows`), so its activations (attention scores of
chunk x capacity per head above all) stay bounded whatever the prompt's length.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from .generate import MIN_PREFILL_ROWS
from .kv_cache import KVCache
from .providers import SessionConfig, make_session

# Rows per prefill pass. Measured on SmolLM2-135M (docs/benchmarks.md, "Fit before load"): prefill speed is
# flat from 256 rows up, and a 512-row pass at a 4096-token capacity holds ~80 MB of attention scores.
DEFAULT_PREFILL_CHUNK = 512


def split_rows(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) passes of at most `chunk` rows covering n rows, none of one row when n > 1: a one-row
    pass runs other kernels than a many-row one (generate.MIN_PREFILL_ROWS), and many-row passes give the
    same rows however a prompt is split."""
    if chunk < MIN_PREFILL_ROWS + 1:
        raise ValueError(f"a prefill chunk must be at least {MIN_PREFILL_ROWS + 1} rows, got {chunk}")
    bounds = list(range(0, n, chunk)) + [n]
    if n > 1 and bounds[-1] - bounds[-2] < MIN_PREFILL_ROWS:  # a short tail: take rows from the pass before it
        bounds[-2] = n - MIN_PREFILL_ROWS
    return list(zip(bounds[:-1], bounds[1:]))


class FusedEngine:
    # Engines open the graph names they are given: for a bundle, read_manifest has already checked
    # that those are listed, confined, regular files (host-side callers pass their own fragments).
    def __init__(self, manifest: dict[str, Any], bundle_dir: Path, config: SessionConfig,
                 capacity: int | None = None, prefill_chunk: int = DEFAULT_PREFILL_CHUNK):
        graph = manifest["graph"]
        split_rows(1, prefill_chunk)  # a bad chunk fails here, before the session is made
        self.prefill_chunk = prefill_chunk
        self.cache = KVCache.from_manifest(manifest, capacity)  # capacity: at most the graph's max_context
        self.session = make_session(Path(bundle_dir) / graph["files"]["decoder"], config, manifest)
        self.packed = config.packed  # packed.PackedGraph: mapped from the cache or not (and why), built by this load
        self.vocab_size = manifest["architecture"]["vocab_size"]
        # Graphs exported before this input existed return logits for every position; that is slower
        # for prompts but correct, so such bundles keep working. Asked of the graph itself, not of the
        # manifest's list: a manifest that leaves the input out must not leave it unfed (a crash in run).
        self.has_keep = "num_logits_to_keep" in {i.name for i in self.session.get_inputs()}
        # Two bindings over the same cache buffers. Decode (one token) binds preallocated numpy-backed
        # OrtValues once and updates them in place, so a step is a single run_with_iobinding call
        # with no allocation; prefill binds per call (its shapes vary).
        self.io = self.session.io_binding()
        self.io.bind_output("logits")  # bound first so it is output 0
        self.cache.bind(self.io)
        self._one = np.zeros((1, 1), np.int64)
        self._seqlens = np.zeros(1, np.int32)
        self._total = np.zeros((), np.int32)
        self._keep1 = np.ones(1, np.int64)
        self._logits1 = np.zeros((1, 1, self.vocab_size), np.float32)
        self.io_decode = self.session.io_binding()
        self._decode_values = [ort.OrtValue.ortvalue_from_numpy(a)
                               for a in (self._one, self._seqlens, self._total, self._keep1, self._logits1)]
        for name, value in zip(("input_ids", "seqlens_k", "total_sequence_length", "num_logits_to_keep"),
                               self._decode_values[:4 if self.has_keep else 3]):
            self.io_decode.bind_ortvalue_input(name, value)
        self.io_decode.bind_ortvalue_output("logits", self._decode_values[-1])
        self.cache.bind(self.io_decode)
        # Run-time adapters: their A/B inputs stay bound in both bindings; switching rebinds them.
        self.adapters = None
        self.adapter: str | None = None
        if manifest.get("lora"):
            from .lora import AdapterSet

            self.adapters = AdapterSet(manifest, Path(bundle_dir))
            self.use_adapter(None)
        self._check_inputs()

    def _check_inputs(self) -> None:
        """Every input of the graph is one this engine feeds: a manifest that does not describe its graph
        (a KV pattern or an adapter section that does not match) is a BundleError here, not a crash in run."""
        fed = {"input_ids", "seqlens_k", "total_sequence_length", "num_logits_to_keep"}
        fed |= {past for past, _, _ in self.cache.slots}
        if self.adapters is not None:
            fed |= set(self.adapters.values(None))
        unfed = sorted({i.name for i in self.session.get_inputs()} - fed)
        if unfed:
            from edge_sdk.errors import BundleError

            raise BundleError(f"the graph has inputs the manifest does not describe ({', '.join(unfed[:3])}"
                              f"{', ...' if len(unfed) > 3 else ''}); the bundle is malformed - re-export it")

    def use_adapter(self, name: str | None) -> None:
        """Bind adapter `name`'s matrices (None: the base model). The cache is the caller's business: its
        entries were computed with the previous adapter."""
        if self.adapters is None:
            if name is None:
                return
            raise ValueError(f"this bundle has no adapters (asked for {name!r}); export it with "
                             "`edge-sdk export SOURCE --adapters NAME=PEFT_DIR`")
        for key, value in self.adapters.values(name).items():
            self.io.bind_ortvalue_input(key, value)
            self.io_decode.bind_ortvalue_input(key, value)
        self.adapter = name

    @property
    def capacity(self) -> int:
        return self.cache.capacity

    @property
    def offset(self) -> int:
        return self.cache.offset

    def forward(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        n = len(ids)
        if n == 0:
            raise ValueError("forward() needs at least one token")
        self.cache.check_room(n)
        if n == 1:
            total = self.cache.offset + 1
            self._seqlens[0] = total - 1
            self._total[...] = total
            self._one[0, 0] = ids[0]
            self.session.run_with_iobinding(self.io_decode)
            self.cache.append(1)
            # A copy (~20 us): callers may keep logits across steps; the buffer is reused.
            return self._logits1[0].copy() if all_logits else self._logits1[0, -1].copy()
        pieces = split_rows(n, self.prefill_chunk)
        if len(pieces) == 1:
            return self._prefill(ids, all_logits)
        rows = [self._prefill(ids[a:b], all_logits) for a, b in pieces]
        return np.concatenate(rows) if all_logits else rows[-1]

    def _prefill(self, ids: Sequence[int], all_logits: bool) -> np.ndarray:
        """One many-row pass after the cached tokens."""
        n = len(ids)
        total = self.cache.offset + n
        self._seqlens[0] = total - 1
        self._total[...] = total
        io = self.io
        io.bind_cpu_input("input_ids", np.asarray(ids, dtype=np.int64).reshape(1, n))
        io.bind_cpu_input("seqlens_k", self._seqlens)
        io.bind_cpu_input("total_sequence_length", self._total)
        if self.has_keep:
            io.bind_cpu_input("num_logits_to_keep", np.array([n if all_logits else 1], np.int64))
        io.bind_output("logits")
        self.session.run_with_iobinding(io)
        self.cache.append(n)
        logits = io.get_outputs()[0].numpy()  # [1, n or 1, vocab]
        # a copy of the last row: the next pass of a chunked prompt reuses the output buffer
        return logits[0] if all_logits else logits[0, -1].copy()

    def rewind(self, n: int) -> None:
        self.cache.rewind(n)

    def reset(self) -> None:
        self.cache.reset()


def engine_class(flavour: str):
    """The engine for a graph flavour named in the manifest."""
    if flavour == "fused":
        return FusedEngine
    if flavour == "static":
        from .static_engine import StaticEngine

        return StaticEngine
    from edge_sdk.errors import BundleError

    raise BundleError(f"graph flavour {flavour!r} is not known to this runtime (known: fused, static); upgrade edge-sdk")
