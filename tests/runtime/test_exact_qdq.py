"""QDQ graphs on the CPU EP compute exact QDQ arithmetic (the CPU run stands in for the NPU)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_sdk.runtime.providers import EXACT_QDQ, SessionConfig, make_session  # noqa: E402

K, N = 576, 192


def _qdq_matmul(tmp_path, rng):
    """y = DQ(Q(x)) @ DQ(W_u8 per column) -> Q -> DQ, with uint16 activations: one w8a16 projection."""
    w = (rng.randn(K, N) * 0.05).astype(np.float32)
    lo, hi = np.minimum(w.min(0), 0), np.maximum(w.max(0), 0)
    ws = ((hi - lo) / 255).astype(np.float32)
    wz = np.round(-lo / ws).astype(np.uint8)
    wq = np.clip(np.round(w / ws) + wz, 0, 255).astype(np.uint8)
    xs, xz = np.float32(8.0 / 65535), np.uint16(32768)
    ys, yz = np.float32(4.0 / 65535), np.uint16(32768)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((wq, "wq"), (ws, "ws"), (wz, "wz"), (np.array(xs), "xs"), (np.array(xz), "xz"),
              (np.array(ys), "ys"), (np.array(yz), "yz"))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "w8a16", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], inits)
    path = tmp_path / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))

    def exact(x):
        xd = (np.clip(np.round(x / xs) + 32768, 0, 65535) - 32768) * np.float64(xs)
        y = xd @ ((wq.astype(np.float64) - wz) * ws)
        return (np.clip(np.round(y / ys) + 32768, 0, 65535) - 32768) * np.float64(ys)

    return path, exact


def test_cpu_session_with_exact_qdq_matches_qdq_arithmetic(tmp_path):
    rng = np.random.RandomState(0)
    path, exact = _qdq_matmul(tmp_path, rng)
    session = make_session(path, SessionConfig(session_entries=dict(EXACT_QDQ)))
    for _ in range(3):
        x = rng.randn(1, K).astype(np.float32)
        ref = exact(x)
        got = session.run(None, {"x": x})[0]
        # One output step (4/65535) apart at most: rounding ties in fp32 vs fp64 accumulation.
        assert np.abs(got - ref).max() <= 4.0 / 65535 * 1.01


def test_static_engine_runs_qdq_bundles_exactly_on_cpu(monkeypatch, tmp_path):
    from edge_sdk.runtime import static_engine

    seen = []
    monkeypatch.setattr(static_engine, "make_session", lambda path, config: seen.append(config))
    manifest = {"graph": {"files": {"prefill": "p.onnx", "decode": "d.onnx"}, "prefill_chunk": 4, "max_context": 8},
                "kv_cache": {"num_layers": 1, "num_kv_heads": 1, "head_dim": 4, "past": "past.{layer}.{kind}",
                             "present": "present.{layer}.{kind}"},
                "quantization": {"format": "qdq"}}
    static_engine.StaticEngine(manifest, tmp_path)
    assert seen[-1].session_entries == EXACT_QDQ
    static_engine.StaticEngine({**manifest, "quantization": {"recipe": "fp32"}}, tmp_path)
    assert seen[-1].session_entries == {}
