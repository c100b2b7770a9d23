"""Exact import of a quantized GGUF (exporters/gguf/weights.py): a tiny random Llama and Qwen2 written as
k-quant GGUFs (Q4_K, Q5_K, Q6_K, Q8_0, Q4_0 mixed as llama.cpp's Q4_K_M mixes them), exported with the
CPU default recipe. Checked against transformers, which loads the same file with gguf-py's dequantizers:
every matrix in the bundle, read back from the ONNX initializers, equals transformers' weight up to
float rounding, and the bundle passes validation against transformers' model."""
import json

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("transformers")

from edge_sdk.exporters.gguf.write import write_model_gguf  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402

# k-quant blocks span 256 inputs: the fake() configs widened so every matrix has whole super-blocks.
WIDE = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "vocab_size": 512}


def q4_k_m(name, w):
    """Q4_K_M-like: v and down in Q6_K, embedding Q8_0, output Q4_0, gate Q5_K, the rest Q4_K."""
    if name == "token_embd.weight":
        return "Q8_0"
    if name == "output.weight" or name.endswith(("attn_v.weight", "ffn_down.weight")):
        return "Q6_K"
    if name.endswith("attn_output.weight"):
        return "Q4_0"
    if name.endswith("ffn_gate.weight"):
        return "Q5_K"
    return "Q4_K"


def dequantized_initializers(bundle, prefix):
    """W [out, in] from a MatMulNBits weight's qweight/scales(/offsets) in the bundle's graph, by our own
    reading of the contrib op's layout (zero point 2^(bits-1), no zero-point input)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(bundle / "model.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "MatMulNBits" and n.input[1] == f"{prefix}.qweight")
    attrs = {a.name: a.i for a in node.attribute}
    q = numpy_helper.to_array(inits[f"{prefix}.qweight"])
    if attrs["bits"] == 4:
        q = np.stack([q & 15, q >> 4], -1).reshape(q.shape[0], q.shape[1], -1)
    scales = numpy_helper.to_array(inits[f"{prefix}.scales"]).reshape(q.shape[0], q.shape[1], 1)
    w = (q.astype(np.float32) - (1 << (attrs["bits"] - 1))) * scales
    if f"{prefix}.offsets" in inits:
        w = w + numpy_helper.to_array(inits[f"{prefix}.offsets"]).T[..., None]
    return w.reshape(q.shape[0], -1), attrs


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_k_quant_gguf_is_imported_exactly(tmp_path, model_type):
    import torch
    from transformers import AutoModelForCausalLM

    from edge_sdk.exporters.export import export

    src = make_tiny_model_dir(tmp_path / "hf", model_type, **WIDE)
    (tmp_path / "gguf").mkdir()  # transformers reads a GGUF from its folder
    gguf_file = write_model_gguf(src, tmp_path / "gguf" / "tiny.gguf", q4_k_m)
    manifest = export(str(gguf_file), tmp_path / "bundle", max_context=128, progress=False)

    report = manifest["quantization"]["gguf_import"]
    tensors = report["tensors"]
    assert tensors and all(e["exact"] for e in tensors.values()), {k: e for k, e in tensors.items() if not e["exact"]}
    assert set(report["summary"]) >= {"Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0"}
    if model_type == "llama":  # llama.cpp's q/k row permutation, undone by matching rows
        assert tensors["model.layers.0.self_attn.q_proj.weight"]["reordered"]
    assert manifest["validation"]["passed"], manifest["validation"]

    hf = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
    sd = {k: v.numpy() for k, v in hf.state_dict().items()}
    # q/k Q4_K + v Q6_K pack as 8-bit blocks of 16; gate Q5_K + up Q4_K as 8-bit blocks of 32; o stays 4-bit.
    formats = {"attn.qkv_proj": (["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], (8, 16)),
               "mlp.gate_up_proj": (["mlp.gate_proj", "mlp.up_proj"], (8, 32)),
               "mlp.down_proj": (["mlp.down_proj"], (8, 16)), "attn.o_proj": (["self_attn.o_proj"], (4, 32))}
    for i in range(2):
        for packed, (parts, fmt) in formats.items():
            want = np.concatenate([sd[f"model.layers.{i}.{n}.weight"] for n in parts])
            got, attrs = dequantized_initializers(tmp_path / "bundle", f"model.layers.{i}.{packed}")
            np.testing.assert_allclose(got, want, rtol=0, atol=np.abs(want).max() * 2e-6, err_msg=packed)
            assert (attrs["bits"], attrs["block_size"]) == fmt, packed
    got, attrs = dequantized_initializers(tmp_path / "bundle", "lm_head")
    head = sd["lm_head.weight"]
    np.testing.assert_allclose(got, head, rtol=0, atol=np.abs(head).max() * 2e-6)


def test_unimportable_types_are_requantized_and_reported(tmp_path):
    """F32 matrices have no block form: the recipe quantizes them, with the weights packed with them (k and v
    run in one kernel with q), and the report says so per tensor. (Not validated: int4 re-quantization of
    a random model's weights does not keep its top-1 tokens; real weights are validated elsewhere.)"""
    from edge_sdk.exporters.export import export

    src = make_tiny_model_dir(tmp_path / "hf", "llama", **WIDE)
    (tmp_path / "gguf").mkdir()
    pick = lambda name, w: "F32" if name == "blk.0.attn_q.weight" else "Q8_0"  # noqa: E731
    gguf_file = write_model_gguf(src, tmp_path / "gguf" / "tiny.gguf", pick)
    manifest = export(str(gguf_file), tmp_path / "bundle", max_context=128, progress=False, validate=False)
    tensors = manifest["quantization"]["gguf_import"]["tensors"]
    q = tensors.pop("model.layers.0.self_attn.q_proj.weight")
    assert not q["exact"] and "F32" in q["why"]
    for name in ("k_proj", "v_proj"):
        e = tensors.pop(f"model.layers.0.self_attn.{name}.weight")
        assert not e["exact"] and "packed with model.layers.0.self_attn.q_proj.weight" in e["why"]
    assert all(e["exact"] for e in tensors.values())
    summary = manifest["quantization"]["gguf_import"]["summary"]
    assert summary["F32"]["requantized"] == 1 and summary["Q8_0"]["requantized"] == 2
    # Layer 0's qkv is the recipe's int4 with offsets; layer 1's the GGUF's own Q8_0 blocks.
    _, attrs0 = dequantized_initializers(tmp_path / "bundle", "model.layers.0.attn.qkv_proj")
    _, attrs1 = dequantized_initializers(tmp_path / "bundle", "model.layers.1.attn.qkv_proj")
    assert attrs0["bits"] == 4 and attrs1["bits"] == 8
    assert json.loads((tmp_path / "bundle" / "edge_manifest.json").read_text())["quantization"]["gguf_import"]
