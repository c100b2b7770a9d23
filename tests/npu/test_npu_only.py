"""The NPU guarantee: with npu_only, a graph that the HTP cannot run entirely does not load.

Without the guarantee a QNN session silently runs the nodes the HTP lacks on the CPU: slow, and not what
the device profile promised. Skipped without onnxruntime-qnn (CI installs it)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime_qnn")
onnx = pytest.importorskip("onnx")

from edge_sdk.errors import DeviceError  # noqa: E402
from edge_sdk.runtime.providers import SessionConfig, make_session  # noqa: E402

pytestmark = pytest.mark.npu


def _graph(path, op: str):
    """A one-node graph: a standard MatMul (the HTP runs it), or com.microsoft's MatMulNBits (not on QNN's list)."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    if op == "MatMul":
        w = numpy_helper.from_array(np.ones((32, 16), np.float32) / 32, "w")
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        inits, opsets = [w], [helper.make_opsetid("", 17)]
    else:
        q = numpy_helper.from_array(np.full((16, 1, 16), 0x88, np.uint8), "q")  # 16 x 32 int4 weights, one block
        s = numpy_helper.from_array(np.ones(16, np.float32), "s")
        node = helper.make_node("MatMulNBits", ["x", "q", "s"], ["y"], domain="com.microsoft", K=32, N=16, bits=4,
                                block_size=32)
        inits, opsets = [q, s], [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], inits), opset_imports=opsets)
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _htp(npu_only: bool) -> SessionConfig:
    return SessionConfig(providers=["QNNExecutionProvider"], npu_only=npu_only)


def test_a_graph_the_htp_runs_loads_with_npu_only(tmp_path):
    session = make_session(_graph(tmp_path / "ok.onnx", "MatMul"), _htp(npu_only=True))
    assert session.run(None, {"x": np.ones((1, 32), np.float32)})[0].shape == (1, 16)


def test_an_op_the_htp_lacks_fails_to_load_with_npu_only(tmp_path):
    path = _graph(tmp_path / "nbits.onnx", "MatMulNBits")
    with pytest.raises(DeviceError, match="could not open nbits.onnx"):
        make_session(path, _htp(npu_only=True))
    # The same graph loads when CPU fallback is allowed: the refusal above is the guarantee, not a broken graph.
    assert make_session(path, _htp(npu_only=False)) is not None


def test_a_bundle_says_npu_only_and_the_session_gets_it():
    from edge_sdk.runtime.model import _session_config

    manifest = {"device": {"execution_providers": ["QNNExecutionProvider"], "threads": 2, "npu_only": True}}
    config = _session_config(manifest, None, None)
    assert config.npu_only and config.providers == ["QNNExecutionProvider"]
    with pytest.raises(DeviceError, match="npu_only"):
        make_session("unused.onnx", SessionConfig(providers=["CPUExecutionProvider"], npu_only=True))
