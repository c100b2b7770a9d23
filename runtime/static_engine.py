"""The engine for the "static" flavour: fixed-shape prefill-chunk and decode graphs (NPU bundles).

The graphs have no dynamic dimension, so the host does what a dynamic graph would do itself:
- owns the KV cache as preallocated numpy buffers [1, kvH, capacity, D] per layer and kind, passes
  them whole as `past_*`, and copies each call's `present_*` (only the new entries) in at `offset`;
- feeds prompts in windows of `prefill_chunk` tokens, padding the last window and masking the pad
  (a shorter-than-window prompt is the common case in chat, not an edge case); a prompt is split as
  the fused engine splits it (`engine.split_rows`), so no window of a prompt is a lone token;
- builds the additive attention mask [1, 1, S, capacity + S] and the position ids.
Single tokens (decode) run the decode graph.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge_sdk.errors import ContextLengthError

from .providers import EXACT_QDQ, SessionConfig, make_session


class _Graph:
    """One static graph and its reusable input arrays."""

    def __init__(self, session, seq_len: int, capacity: int, mask_value: float, names: dict[str, str]):
        self.session = session
        self.seq_len = seq_len
        self.ids = np.zeros((1, seq_len), np.int64)
        self.pos = np.zeros((1, seq_len), np.int64)
        self.mask = np.full((1, 1, seq_len, capacity + seq_len), mask_value, np.float32)
        # Causal triangle over the new tokens: row r sees new tokens 0..r (the pad rows see
        # everything before them; their outputs are discarded).
        self.causal = np.where(np.tril(np.ones((seq_len, seq_len), bool)), 0.0, mask_value).astype(np.float32)
        self.names = names


class StaticEngine:
    """Engine interface (capacity, offset, forward, rewind, reset) over the static graph pair."""

    def __init__(self, manifest: dict[str, Any], bundle_dir: Path, config: SessionConfig | None = None):
        graph, kv = manifest["graph"], manifest["kv_cache"]
        config = config or SessionConfig()
        bundle_dir = Path(bundle_dir)
        self.capacity = int(graph["max_context"])
        self.chunk = int(graph["prefill_chunk"])
        self.mask_value = float(graph.get("mask_value", -100.0))
        names = graph.get("inputs", {})
        names = {k: names.get(k, k) for k in ("input_ids", "position_ids", "attention_mask")}
        self.offset = 0
        shape = (1, kv["num_kv_heads"], self.capacity, kv["head_dim"])
        dtype = np.dtype(kv.get("dtype", "float32"))
        # (past input name, present output name, buffer); allocated once, never resized.
        self.slots: list[tuple[str, str, np.ndarray]] = [
            (kv["past"].format(layer=i, kind=k), kv["present"].format(layer=i, kind=k), np.zeros(shape, dtype))
            for i in range(kv["num_layers"]) for k in ("key", "value")
        ]
        self._present = [present for _, present, _ in self.slots]
        files = graph["files"]
        qnn_defaults = graph.get("qnn_options")
        if qnn_defaults and config.providers[:1] == ["QNNExecutionProvider"]:
            # The options the bundle was built for (fp16 for its float nodes); the caller's win.
            given = config.provider_options.get("QNNExecutionProvider", {})
            config = replace(config, provider_options={**config.provider_options,
                                                       "QNNExecutionProvider": {**qnn_defaults, **given}})
        if manifest.get("quantization", {}).get("format") == "qdq" and config.providers[:1] != ["QNNExecutionProvider"]:
            # QDQ run on the CPU is the fast stand-in for the NPU: keep its arithmetic exact.
            config = replace(config, session_entries={**EXACT_QDQ, **config.session_entries})
        # On the QNN EP, precompiled context binaries (when exported) skip the on-device compile.
        if graph.get("context_binaries") and config.providers[:1] == ["QNNExecutionProvider"]:
            files = graph["context_binaries"]["files"]
        self.files = dict(files)
        self.graphs = {
            kind: _Graph(make_session(bundle_dir / files[kind], config), s, self.capacity, self.mask_value, names)
            for kind, s in (("prefill", self.chunk), ("decode", 1))
        }
        # Called with (graph kind, feeds) before every run: calibration records the host inputs.
        self.on_feeds: Callable[[str, dict[str, np.ndarray]], None] | None = None

    def forward(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Append `ids` to the cache; logits of the last position [V] (or of every position [n, V])."""
        n = len(ids)
        if n == 0:
            raise ValueError("forward() needs at least one token")
        if self.offset + n > self.capacity:
            raise ContextLengthError(
                f"{self.offset} tokens in context + {n} new = {self.offset + n} exceeds the maximum context of "
                f"{self.capacity} tokens this static graph was exported for; start a new conversation, shorten "
                "the prompt, or export with a larger max_context")
        from .engine import split_rows

        ids = np.asarray(ids, dtype=np.int64)
        out = []
        # (A graph of 1 or 2 rows per window cannot avoid a one-row tail: its windows are taken in order.)
        windows = split_rows(n, self.chunk) if self.chunk > 2 else [(i, min(i + self.chunk, n)) for i in range(0, n, self.chunk)]
        for start, end in windows:  # a one-row window goes to the decode graph
            piece = ids[start:end]
            kind = "decode" if len(piece) == 1 else "prefill"
            logits = self._run(self.graphs[kind], kind, piece)
            out.append(logits if all_logits else logits[-1:])
        return np.concatenate(out) if all_logits else out[-1][0]

    def _run(self, g: _Graph, kind: str, piece: np.ndarray) -> np.ndarray:
        n, off, S, C = len(piece), self.offset, g.seq_len, self.capacity
        g.ids[0, :n] = piece
        g.ids[0, n:] = 0  # pad with any valid id; masked out below
        # Pad positions are clipped into the RoPE table (their rows are discarded anyway).
        np.minimum(np.arange(off, off + S), C - 1, out=g.pos[0])
        g.mask[..., :C] = self.mask_value
        g.mask[..., :off] = 0.0  # filled cache positions
        g.mask[0, 0, :, C:] = g.causal
        g.mask[0, 0, :, C + n:] = self.mask_value  # pad keys are never attended
        feeds = {g.names["input_ids"]: g.ids, g.names["position_ids"]: g.pos, g.names["attention_mask"]: g.mask}
        for past, _, buf in self.slots:
            feeds[past] = buf
        if self.on_feeds is not None:
            self.on_feeds(kind, feeds)
        logits, *presents = g.session.run(["logits"] + self._present, feeds)
        for (_, _, buf), new in zip(self.slots, presents):
            buf[:, :, off:off + n] = new[:, :, :n]  # only the real tokens enter the cache
        self.offset += n
        return logits[0, :n]  # [n, V]

    def rewind(self, n: int) -> None:
        """Drop the last `n` tokens (their entries stay in the buffer but are masked out)."""
        if not 0 <= n <= self.offset:
            raise ValueError(f"cannot rewind {n} tokens: the cache holds {self.offset}")
        self.offset -= n

    def reset(self) -> None:
        self.offset = 0
