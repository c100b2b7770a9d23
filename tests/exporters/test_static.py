"""Static (NPU) flavour: parity with transformers, padding, QDQ accuracy, and the device-fit checker."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edge_sdk.errors import ContextLengthError, DeviceFitError  # noqa: E402
from edge_sdk.exporters import npu_check  # noqa: E402
from edge_sdk.exporters.architectures import SUPPORTED  # noqa: E402
from edge_sdk.exporters.graph.decoder import emit_decoder  # noqa: E402
from edge_sdk.exporters.graph.static import emit_static, export_static  # noqa: E402
from edge_sdk.runtime.static_engine import StaticEngine  # noqa: E402

CHUNK, CONTEXT = 8, 64


def tiny(model_type: str):
    """A random transformers model for the architecture's fake() config, and its weights."""
    from edge_sdk.exporters.testing import random_hf_model

    args, model = random_hf_model(model_type)
    return args, model, {k: v.numpy() for k, v in model.state_dict().items()}


def reference(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([list(ids)])).logits[0].numpy()


def run(engine: StaticEngine, ids, split: int) -> np.ndarray:
    """Prefill ids[:split] in one call, then decode the rest one token at a time; all logits."""
    engine.reset()
    out = [engine.forward(ids[:split], all_logits=True)]
    out += [engine.forward([t])[None] for t in ids[split:]]
    return np.concatenate(out)


@pytest.fixture(scope="module", params=[*SUPPORTED, "llama+llama3-rope"])  # every architecture, on the NPU too
def fp32(request, tmp_path_factory):
    if request.param.endswith("llama3-rope"):
        from .test_export_parity import _scaled_llama

        args, model = _scaled_llama()
        weights = {k: v.numpy() for k, v in model.state_dict().items()}
    else:
        args, model, weights = tiny(request.param)
    d = tmp_path_factory.mktemp(f"static-{request.param}")
    return model, export_static(args, weights, d, CHUNK, CONTEXT), d


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    args, model, weights = tiny("llama")
    rng = np.random.RandomState(1)
    calibration = [rng.randint(0, args.vocab_size, n).tolist() for n in (30, 13, 45, 6)]
    d = tmp_path_factory.mktemp("static-qdq")
    return model, export_static(args, weights, d, CHUNK, CONTEXT, "w8a16-qdq", calibration), d


@pytest.mark.parametrize("split", [3, CHUNK, 2 * CHUNK + 3])  # shorter than, equal to, longer than the window
def test_fp32_matches_transformers(fp32, split):
    model, fragment, d = fp32
    ids = np.random.RandomState(0).randint(0, 512, 2 * CHUNK + 7).tolist()
    ours = run(StaticEngine(fragment, d), ids, split)
    np.testing.assert_allclose(ours, reference(model, ids), atol=1e-4)


def test_short_prompt_padding_and_single_token(fp32):
    model, fragment, d = fp32
    engine = StaticEngine(fragment, d)
    ref = reference(model, [7, 9])
    assert engine.forward([7]).shape == (512,)  # one token goes through the decode graph
    np.testing.assert_allclose(engine.forward([9]), ref[-1], atol=1e-4)
    engine.reset()
    np.testing.assert_allclose(engine.forward([7, 9], all_logits=True), ref, atol=1e-4)  # padded to the window


def test_rewind_and_capacity(fp32):
    model, fragment, d = fp32
    engine = StaticEngine(fragment, d)
    ids = list(range(1, 13))
    full = engine.forward(ids)
    engine.rewind(4)
    assert engine.offset == 8
    np.testing.assert_allclose(engine.forward(ids[8:]), full, atol=1e-5)  # stale entries are masked
    with pytest.raises(ContextLengthError):
        engine.forward([1] * (CONTEXT - engine.offset + 1))


def test_graphs_are_static_standard_and_fit(fp32):
    _, fragment, d = fp32
    for name in fragment["graph"]["files"].values():
        model = onnx.load(str(d / name))
        npu_check.check_graph(model, "qnn-htp", d / name)
        assert {n.domain for n in model.graph.node} <= {""}
    assert fragment["graph"]["flavour"] == "static" and fragment["graph"]["prefill_chunk"] == CHUNK


def test_checker_rejects_contrib_ops_and_dynamic_shapes():
    args, _, weights = tiny("llama")
    fused = emit_decoder(args, weights, "fused", max_context=CONTEXT)
    with pytest.raises(DeviceFitError, match="contrib operator|dynamic dimension"):
        npu_check.check_graph(fused)
    # Only the operator problem: make the I/O static and the checker must name a contrib node.
    for vi in list(fused.graph.input) + list(fused.graph.output):
        for dim in vi.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    with pytest.raises(DeviceFitError, match=r"node '.+' is com\.microsoft:"):
        npu_check.check_graph(fused)


def test_checker_rejects_unsupported_op():
    args, _, weights = tiny("llama")
    model = emit_static(args, weights, 1, CONTEXT)
    model.graph.node[-1].op_type = "Erf"  # not on the QNN HTP list
    with pytest.raises(DeviceFitError, match="Erf is not supported"):
        npu_check.check_graph(model)


def test_qdq_close_to_fp32_on_cpu(qdq):
    model, fragment, d = qdq
    assert fragment["quantization"]["recipe"] == "w8a16-qdq"
    assert {n.op_type for n in onnx.load(str(d / "decode.onnx")).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    ids = np.random.RandomState(3).randint(0, 512, 20).tolist()
    ours, ref = run(StaticEngine(fragment, d), ids, 11), reference(model, ids)
    cos = (ours * ref).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.99, cos
    assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= 0.9
