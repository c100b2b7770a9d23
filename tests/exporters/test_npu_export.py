"""exporters/npu_export.py and the QDQ pieces it relies on, on the tiny fake() llama (CPU EP only)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edge_sdk.devices import load_profile  # noqa: E402
from edge_sdk.errors import DeviceFitError  # noqa: E402
from edge_sdk.exporters import qdq  # noqa: E402
from edge_sdk.exporters.graph.static import KEEP_FLOAT, emit_static  # noqa: E402
from edge_sdk.exporters.npu_export import calibration_ids, export_static_bundle  # noqa: E402
from edge_sdk.exporters.progress import Progress  # noqa: E402
from edge_sdk.exporters.recipes import get_recipe  # noqa: E402
from edge_sdk.runtime.static_engine import StaticEngine  # noqa: E402


class StubTokenizer:
    """Chat template and encode over the fake model's 512-token vocabulary."""

    chat_template = "{{ messages }}"

    def encode(self, text):
        return [3 + (ord(c) % 500) for c in text][:60]

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        return [1] + [t for m in messages for t in self.encode(m["role"] + ":" + m["content"])] + [2]


@pytest.fixture(scope="module")
def tiny():
    from edge_sdk.exporters.testing import random_hf_model

    args, model = random_hf_model("llama")
    return args, model, {k: v.numpy() for k, v in model.state_dict().items()}


def cpu_profile(**changes):
    return dataclasses.replace(load_profile("snapdragon-8-gen3"), execution_providers=("CPUExecutionProvider",),
                               prefill_chunk=8, **changes)


def test_calibration_ids_are_chat_and_text():
    seqs = calibration_ids(StubTokenizer(), max_len=40)
    assert len(seqs) >= 8 and all(2 <= len(s) <= 40 for s in seqs)
    assert sum(s[0] == 1 for s in seqs) >= 8  # chat-formatted: starts like the device's prompts


def test_residual_stream_and_attention_core_are_tagged_float(tiny):
    args, model, weights = tiny
    graph = emit_static(args, weights, 1, 16)
    inits = {t.name for t in graph.graph.initializer}
    tagged = [n for n in graph.graph.node if n.doc_string == KEEP_FLOAT]
    # Every residual Add and norm statistic, and the attention core (Q.K^T, softmax, P.V)...
    assert {n.op_type for n in tagged} >= {"Add", "Abs", "ReduceMax", "ReduceMean", "Sqrt", "Div", "Softmax"}
    core = [n for n in tagged if n.op_type == "MatMul"]
    assert len(core) == 2 * args.num_hidden_layers and not any(i in inits for n in core for i in n.input)
    # ...but none of the weight projections: those are what w8 quantizes.
    assert not any(n.op_type == "MatMul" and n.input[1] in inits for n in tagged)


def test_calibrate_ranges_streams_min_max(tiny, tmp_path):
    args, _, weights = tiny
    path = tmp_path / "decode.onnx"
    onnx.save(emit_static(args, weights, 1, 16), str(path))
    import onnxruntime as ort

    rng = np.random.RandomState(0)
    feeds = []
    for t in range(3):
        feed = {"input_ids": np.array([[rng.randint(512)]]), "position_ids": np.array([[t]]),
                "attention_mask": np.where(np.arange(17) < t, 0.0, -100.0).astype(np.float32)[None, None, None]}
        feed["attention_mask"][..., 16] = 0.0
        for i in range(args.num_hidden_layers):
            for k in ("key", "value"):
                feed[f"past_key_values.{i}.{k}"] = rng.randn(1, args.num_key_value_heads, 16, args.head_dim).astype(np.float32)
        feeds.append(feed)
    ranges = qdq.calibrate_ranges(path, feeds)
    logits = [ort.InferenceSession(str(path)).run(["logits"], f)[0] for f in feeds]
    assert ranges["logits"] == pytest.approx((min(x.min() for x in logits), max(x.max() for x in logits)), rel=1e-6)
    assert ranges["attention_mask"] == (-100.0, 0.0)


def test_fp32_bundle_matches_transformers(tiny, tmp_path):
    args, model, weights = tiny
    out = export_static_bundle(args, weights, tmp_path, profile=cpu_profile(), recipe=get_recipe("fp32"),
                               max_context=32, hf_tok=StubTokenizer(), progress=Progress(enabled=False))
    assert set(out) == {"graph", "kv_cache", "quantization_details"}
    assert out["graph"]["prefill_chunk"] == 8 and "context_binaries" not in out["graph"]
    ids = [5, 9, 200, 17, 3]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0, -1].numpy()
    np.testing.assert_allclose(StaticEngine(out, tmp_path).forward(ids), ref, atol=1e-4)
    # Both graphs point into one weights file, which holds each (identical) initializer once.
    shared = out["graph"]["weights_file"]
    assert sorted(p.name for p in tmp_path.glob("*.data")) == ["weights.data"]
    assert shared["referenced_bytes"] == 2 * shared["unique_bytes"]
    assert (tmp_path / "weights.data").stat().st_size < shared["referenced_bytes"]


def test_qdq_bundle_keeps_residual_float_and_quantizes_per_channel(tiny, tmp_path):
    args, model, weights = tiny
    out = export_static_bundle(args, weights, tmp_path, profile=cpu_profile(), recipe=get_recipe("w8a16-qdq"),
                               max_context=32, hf_tok=StubTokenizer(), progress=Progress(enabled=False))
    details = out["quantization_details"]
    assert details["recipe"] == "w8a16-qdq" and details["float_nodes"]["decode"]["count"] > 0
    json.dumps(out)  # manifest sections are JSON
    graph = onnx.load(str(tmp_path / "decode.onnx"))
    inits = {t.name: t for t in graph.graph.initializer}
    scales = [inits[n.input[1]] for n in graph.graph.node
              if n.op_type == "DequantizeLinear" and n.input[0].endswith("q_proj.MatMul.weight_quantized")]
    assert scales and list(scales[0].dims) == [args.num_attention_heads * args.head_dim]  # one scale per column
    produced_by = {o: n for n in graph.graph.node for o in n.output}
    for node in graph.graph.node:
        # Float regions end only at the norm's Div and the attention's P.V MatMul: the residual Add
        # never goes through a 16-bit grid.
        if node.op_type == "QuantizeLinear" and node.input[0] in produced_by:
            producer = produced_by[node.input[0]]
            assert producer.doc_string != KEEP_FLOAT or producer.op_type in ("Div", "MatMul"), producer.name
    ids = np.random.RandomState(3).randint(0, 512, 14).tolist()
    ours = StaticEngine(out, tmp_path).forward(ids, all_logits=True)
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    cos = (ours * ref).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.99, cos


def test_non_npu_recipe_is_refused(tiny, tmp_path):
    args, _, weights = tiny
    with pytest.raises(DeviceFitError, match="does not apply to the static"):
        export_static_bundle(args, weights, tmp_path, profile=cpu_profile(), recipe=get_recipe("int4-b32"),
                             max_context=32, hf_tok=StubTokenizer(), progress=Progress(enabled=False))


def test_w4a16_weights_are_int4_blocks_of_32(tiny, tmp_path):
    from onnx import numpy_helper

    args, model, weights = tiny
    out = export_static_bundle(args, weights, tmp_path, profile=cpu_profile(), recipe=get_recipe("w4a16-qdq"),
                               max_context=32, hf_tok=StubTokenizer(), progress=Progress(enabled=False))
    assert out["quantization_details"]["block_size"] == 32
    graph = onnx.load(str(tmp_path / "decode.onnx"))
    inits = {t.name: t for t in graph.graph.initializer}
    blocked = {}
    for node in graph.graph.node:
        attrs = {a.name: a.i for a in node.attribute}
        if node.op_type == "DequantizeLinear" and attrs.get("block_size"):
            weight = inits[node.input[0]]
            assert weight.data_type == onnx.TensorProto.INT4 and attrs["axis"] == 0 and len(node.input) == 2
            k, n = weight.dims
            assert list(inits[node.input[1]].dims) == [k // 32, n]
            blocked[node.input[0]] = numpy_helper.to_array(weight)
    # Every projection of every layer, lm_head excluded (8 bits per channel).
    assert len(blocked) == 6 * args.num_hidden_layers and not any("lm_head" in k for k in blocked)
    ids = np.random.RandomState(3).randint(0, 512, 14).tolist()
    ours = StaticEngine(out, tmp_path).forward(ids, all_logits=True)
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    cos = (ours * ref).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.97 and cos.mean() > 0.99, cos  # int4 on a random model; a broken layout is << 0.9
