"""onnxruntime sessions from a device's execution-provider preferences."""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edge_sdk.errors import DeviceError


@dataclass
class SessionConfig:
    """How to open a graph: EPs in preference order, threads, whether CPU fallback is allowed."""

    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: int | None = None  # intra-op threads; None = onnxruntime's default (all cores)
    npu_only: bool = False  # disable the CPU fallback: fail unless the whole graph runs on the NPU
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # onnxruntime session config entries (SessionOptions.add_session_config_entry), e.g. EXACT_QDQ.
    session_entries: dict[str, str] = field(default_factory=dict)
    # arm64: False turns KleidiAI off (DISABLE_KLEIDIAI); None/True leave onnxruntime's choice (on where the CPU has
    # dotprod). Its int4 kernels round MatMulNBits' fp32 block scales to bf16, so the weights are no longer the GGUF's.
    kleidiai: bool | None = None
    # Drop the resident pages of weights onnxruntime has packed but still maps (memory.py): -32 MB peak on SmolLM2.
    release_pages: bool = True
    # Where packed MatMulNBits weights are cached and mapped from (packed.py): None = EDGE_SDK_PACKED_CACHE or the
    # user cache, "off" = pack on the heap at every load as before.
    packed_cache: str | None = None
    packed: Any = None  # set by make_session: the packed.PackedGraph it opened (cached or not, and why)


# On the CPU EP, onnxruntime rewrites DequantizeLinear(weight) -> MatMul into MatMulNBits with
# accuracy level 4, which quantizes the activations to int8 inside the MatMul: a w8a16 QDQ graph
# then runs ~41 dB off its own QDQ arithmetic (measured on SmolLM2's v_proj), so the CPU no longer
# predicts what the NPU computes. Level 0 keeps fp32 activations: the CPU result equals exact QDQ.
EXACT_QDQ = {"session.qdq_matmulnbits_accuracy_level": "0"}

# On arm64 CPUs with dotprod, onnxruntime runs 4-bit MatMulNBits without zero points at accuracy level 4 through
# KleidiAI, which packs the fp32 block scales as bf16 (qnbitgemm_kernel_neon.cpp): on the emulated arm64 CPU the
# int4-b32 bundle's logits moved by up to 3.0 (docs/deploy.md). The entry is ignored where KleidiAI is not built in.
DISABLE_KLEIDIAI = {"mlas.disable_kleidiai": "1"}


@contextlib.contextmanager
def _native_stdout_to_stderr(active: bool):
    """The QNN libraries print a banner to the process's stdout while a session is created, which
    would corrupt `--json` output: point file descriptor 1 at stderr for that moment."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def make_session(path: Path, config: SessionConfig, manifest: dict[str, Any] | None = None) -> ort.InferenceSession:
    """Open graph `path` as `config` says. With the bundle's `manifest` (a fused 4/8-bit graph on the CPU), the
    graph is opened from the packed-weights cache (packed.py), built there on the first load."""
    if manifest is not None:
        from . import packed

        if packed.applies(manifest, config.providers):
            graph = packed.packed_graph(Path(path), manifest, _entries(config), lambda: _options(config),
                                        packed.cache_root(config.packed_cache))
            path = graph.path
            config.packed = graph  # what happened (cached or not, and why), for callers and benchmarks
    so = _options(config)
    available = set(ort.get_available_providers())
    providers: list[str] = []
    for name in config.providers:
        if name == "QNNExecutionProvider":
            from . import qnn  # plugin EP: registered through its library, not listed as available

            qnn.add_qnn(so, config.provider_options.get(name, {}), npu_only=config.npu_only)
            continue
        if name in available:
            providers.append(name)
    if config.npu_only and "QNNExecutionProvider" not in config.providers:
        raise DeviceError("npu_only is set but the profile names no NPU execution provider")
    if not providers and not config.npu_only:
        providers = ["CPUExecutionProvider"]
    try:
        with _native_stdout_to_stderr("QNNExecutionProvider" in config.providers):
            session = ort.InferenceSession(str(path), sess_options=so, providers=providers or None)
    except Exception as e:  # onnxruntime raises its own exception types; name the file and the cause
        raise DeviceError(f"onnxruntime could not open {path.name} with {config.providers}: {e}") from e
    if config.release_pages:
        from .memory import release_file_pages

        release_file_pages(Path(path).parent)
    return session


def _options(config: SessionConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    if config.threads:
        so.intra_op_num_threads = int(config.threads)
        so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # onnxruntime's warnings about unused initializers etc. are noise for users
    for key, value in _entries(config).items():
        so.add_session_config_entry(key, value)
    return so


def _entries(config: SessionConfig) -> dict[str, str]:
    """The session config entries: the profile's KleidiAI choice, then the config's own (they key the packed cache
    too, so a session with KleidiAI off never maps weights packed for it)."""
    return {**(DISABLE_KLEIDIAI if config.kleidiai is False else {}), **config.session_entries}
