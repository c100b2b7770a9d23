"""Quantization recipes on a tiny random model: the graph holds the expected ops, outputs stay near fp32."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.exporters.graph.decoder import emit_decoder  # noqa: E402
from edge_sdk.exporters.graph.linear import quantize_offset_int4  # noqa: E402
from edge_sdk.exporters.quantize import apply_recipe  # noqa: E402
from edge_sdk.exporters.recipes import RECIPES, emitter_options, get_recipe  # noqa: E402
from edge_sdk.exporters.testing import random_hf_model  # noqa: E402
from edge_sdk.runtime.engine import FusedEngine  # noqa: E402
from edge_sdk.runtime.providers import SessionConfig  # noqa: E402

# recipe -> (bits, block, min cosine of logits vs fp32). Random weights are harder to quantize than trained ones.
EXPECT = {"int4-b32": (4, 32, 0.98), "int4-b32-sym": (4, 32, 0.97), "int4-b32-asym": (4, 32, 0.97),
          "int4-b64": (4, 64, 0.95), "int8": (8, 32, 0.999)}


@pytest.fixture(scope="module")
def tiny():
    args, hf = random_hf_model("llama")
    return args, {k: v.numpy() for k, v in hf.state_dict().items()}


def _logits(model, tmp_path, args, ids):
    onnx.save(model, str(tmp_path / "model.onnx"))
    manifest = {"graph": {"files": {"decoder": "model.onnx"}, "max_context": 64},
                "architecture": {"vocab_size": args.vocab_size},
                "kv_cache": {"num_layers": args.num_hidden_layers, "num_kv_heads": args.num_key_value_heads,
                             "head_dim": args.head_dim, "past": "past_key_values.{layer}.{kind}",
                             "present": "present.{layer}.{kind}"}}
    return FusedEngine(manifest, tmp_path, SessionConfig(threads=1)).forward(ids, all_logits=True)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_recipe_graph_ops_and_closeness(name, tiny, tmp_path):
    args, weights = tiny
    bits, block, min_cos = EXPECT[name]
    rec = get_recipe(name)
    model = apply_recipe(emit_decoder(args, weights, "fused", max_context=64, **emitter_options(rec)), rec)
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nbits]
    # every projection (4 per layer) and the head are MatMulNBits with the recipe's bits/block/accuracy level
    assert len(nbits) == 4 * args.num_hidden_layers + 1
    head_bits = 8 if name == "int4-b32" else bits  # the default keeps the head at int8 (Q8_0 layout)
    assert sorted({a["bits"] for a in attrs}) == sorted({bits, head_bits})
    assert {a["block_size"] for a in attrs} == {block} and {a["accuracy_level"] for a in attrs} == {4}
    ids = np.random.RandomState(3).randint(0, args.vocab_size, 12).tolist()
    (tmp_path / "ref").mkdir()
    ref = _logits(emit_decoder(args, weights, "fused", max_context=64), tmp_path / "ref", args, ids)
    ours = _logits(model, tmp_path, args, ids)
    cos = (ours * ref).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(ref, axis=-1))
    assert cos.min() >= min_cos, (name, cos.min())


def test_offset_int4_reproduces_q4_1_blocks_exactly():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 16, (8, 4, 32))
    q[..., 0], q[..., 1] = 0, 15  # Q4_1 maps each block's min to 0 and max to 15
    d = rng.uniform(0.001, 0.02, (8, 4, 1)).astype(np.float32)
    m = rng.uniform(-0.2, 0.0, (8, 4, 1)).astype(np.float32)
    w = (q * d + m).reshape(8, 128).astype(np.float32)
    packed, d2, m2 = quantize_offset_int4(w, 32)
    q2 = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(8, 4, 32)
    back = (q2 * d2[..., None] + m2[..., None]).reshape(8, 128)
    np.testing.assert_allclose(back, w, atol=1e-6)


def test_every_recipe_is_described_and_sized():
    for r in RECIPES.values():
        assert r.description and r.flavours and r.bytes_per_weight > 0 and 0 < r.max_ppl_increase <= 0.1


def _run_graph(b, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(b.model().SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def test_offset_int4_linear_computes_the_q4_1_product():
    """The emitted int4 linear (nibbles with implicit zero point 8, offsets m + 8d) computes x @ W^T
    for a Q4_1 weight; accuracy level 0 keeps the activations float, so only rounding remains."""
    from edge_sdk.exporters.graph.builder import GraphBuilder
    from edge_sdk.exporters.graph.linear import make_int4_offset

    rng = np.random.default_rng(1)
    q = rng.integers(0, 16, (48, 4, 32))
    q[..., 0], q[..., 1] = 0, 15
    d = rng.uniform(0.001, 0.02, (48, 4, 1)).astype(np.float16).astype(np.float32)  # GGUF: fp16 d and m
    m = rng.uniform(-0.2, 0.05, (48, 4, 1)).astype(np.float16).astype(np.float32)
    w = (q * d + m).reshape(48, 128).astype(np.float32)
    b = GraphBuilder()
    x = b.input("x", np.float32, [1, "S", 128])
    b.op("Identity", [make_int4_offset(32, accuracy_level=0)(b, x, w, "p")], outputs=["y"])
    b.output("y", np.float32, [1, "S", 48])
    assert not any(len(n.input) > 3 for n in b.nodes if n.op_type == "MatMulNBits")  # no zero-point input
    xs = rng.standard_normal((1, 5, 128)).astype(np.float32)
    np.testing.assert_allclose(_run_graph(b, {"x": xs}), xs @ w.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])  # the fake llama ties its head, qwen2 does not
def test_a_tied_embedding_is_read_from_the_int8_head(model_type, tmp_path):
    args, hf = random_hf_model(model_type)
    weights = {k: v.numpy() for k, v in hf.state_dict().items()}
    rec = get_recipe("int4-b32")
    model = apply_recipe(emit_decoder(args, weights, "fused", max_context=64, **emitter_options(rec)), rec)
    names = [t.name for t in model.graph.initializer]
    assert len(names) == len(set(names))
    ops = {n.op_type for n in model.graph.node}
    if args.tie_word_embeddings:
        assert "model.embed_tokens.weight" not in names and "GatherBlockQuantized" in ops
        gbq = next(n for n in model.graph.node if n.op_type == "GatherBlockQuantized")
        head = next(n for n in model.graph.node if n.op_type == "MatMulNBits" and n.input[1].startswith("lm_head"))
        assert gbq.input[0] == head.input[1]  # one table, two readers
    else:
        assert "model.embed_tokens.weight" in names and "GatherBlockQuantized" not in ops
    # The embedding of a token is the head's row: feeding ids through the embedding alone (a cut graph)
    # gives the Q8_0 dequantization of the table, within int8 rounding of the float table.
    from edge_sdk.exporters.graph.builder import GraphBuilder
    from edge_sdk.exporters.graph.linear import make_int8_gather, quantize_int8_sym

    table = weights["model.embed_tokens.weight"]
    b = GraphBuilder()
    ids = b.input("ids", np.int64, [1, "S"])
    b.op("Identity", [make_int8_gather(32)(b, ids, table, "lm_head")], outputs=["rows"])
    b.output("rows", np.float32, [1, "S", table.shape[1]])
    pick = np.array([[0, 5, table.shape[0] - 1]])
    q, dq = quantize_int8_sym(table, 32)
    expect = ((q.astype(np.float32) - 128) * dq[..., None]).reshape(table.shape)[pick[0]]
    np.testing.assert_array_equal(_run_graph(b, {"ids": pick})[0], expect)
    np.testing.assert_allclose(expect, table[pick[0]], atol=np.abs(table).max() / 127)


def test_accuracy_level_per_linear_follows_the_recipe_fields():
    from edge_sdk.exporters.recipes import accuracy_level

    names = [f"model.layers.{i}.{p}" for i in (0, 29) for p in ("attn.qkv_proj", "attn.o_proj", "mlp.gate_up_proj",
                                                                "mlp.down_proj")] + ["lm_head"]

    def fp32(recipe):  # the linears of a 30-layer model that take fp32 activations
        return {n for n in names if accuracy_level(get_recipe(recipe), n, 30) == 0}

    assert fp32("int4-b32") == set() and fp32("int4-b32-xhead") == set()
    assert fp32("int4-b32-a32") == set(names) - {"lm_head"}
    assert fp32("int4-b32-acc0") == set(names) and fp32("int4-b32-a32-head") == {"lm_head"}
    assert fp32("int4-b32-a32-down") == {"model.layers.0.mlp.down_proj", "model.layers.29.mlp.down_proj"}
    assert fp32("int4-b32-a32-attn") == {n for n in names if ".attn." in n}
    assert fp32("int4-b32-a32-mlp") == {n for n in names if ".mlp." in n}
    assert fp32("int4-b32-a32-last8") == {n for n in names if n.startswith("model.layers.29.")}
    with pytest.raises(ValueError, match="not a linear"):
        accuracy_level(get_recipe("int4-b32"), "model.embed_tokens", 30)
    with pytest.raises(ValueError, match="num_layers"):
        emitter_options(get_recipe("int4-b32-a32-last8"))


def _levels(model) -> dict[str, int]:
    return {n.input[1].removesuffix(".qweight"): next(a.i for a in n.attribute if a.name == "accuracy_level")
            for n in model.graph.node if n.op_type == "MatMulNBits"}


def test_a32_keeps_layer_activations_fp32_and_recomputes_the_head_top_k_exactly(tiny, tmp_path):
    """int4-b32-a32: every layer at accuracy level 0, the head at 4 with its top 8 recomputed from fp32 activations.
    Its top logits then equal those of the same weights at fp32 activations everywhere (int4-b32-acc0, whose
    8-bit head has no fast kernel), while int4-b32 (int8 activations) is measurably off them."""
    args, weights = tiny
    logits, ids = {}, np.random.RandomState(5).randint(0, args.vocab_size, 16).tolist()
    for name in ("int4-b32-a32", "int4-b32-acc0", "int4-b32"):
        rec = get_recipe(name)
        model = emit_decoder(args, weights, "fused", max_context=64, **emitter_options(rec, args.num_hidden_layers))
        levels = _levels(model)
        if name == "int4-b32-a32":
            assert levels.pop("lm_head") == 4 and set(levels.values()) == {0}
            ops = [n.op_type for n in model.graph.node]
            assert ops.count("TopK") == 1 and ops.count("ScatterElements") == 1
        (tmp_path / name).mkdir()
        logits[name] = _logits(model, tmp_path / name, args, ids)  # [16, vocab]
    ref, ours, int8 = logits["int4-b32-acc0"], logits["int4-b32-a32"], logits["int4-b32"]
    top = np.argsort(-ref, axis=-1)[:, :4]  # surely among the 8 the int8-activation head ranks first
    pick = lambda x: np.take_along_axis(x, top, axis=-1)  # noqa: E731
    np.testing.assert_allclose(pick(ours), pick(ref), atol=1e-4)
    assert (ours.argmax(-1) == ref.argmax(-1)).all()
    assert np.abs(pick(int8) - pick(ref)).max() > 10 * np.abs(pick(ours) - pick(ref)).max()
    # the other logits keep their int8-activation values: close, not exact
    assert 1e-4 < np.abs(ours - ref).max() < 0.1 * np.abs(ref).max()


def test_exact_top_reads_the_head_table_it_recomputes(tmp_path):
    """`exact_top` on a bare head with float offsets (an int4 head from a GGUF): the top-k entries of y equal
    x @ W^T in float64 for W = the blocks' own values, the others are left as they were."""
    from edge_sdk.exporters.gguf.blocks import Blocks
    from edge_sdk.exporters.graph.builder import GraphBuilder
    from edge_sdk.exporters.graph.linear import exact_top, from_blocks

    rng = np.random.default_rng(2)
    rows, cols = 96, 64
    blocks = Blocks(4, 32, rng.integers(0, 16, (rows, cols)).astype(np.uint8),
                    rng.uniform(0.01, 0.05, (rows, 2)).astype(np.float32),
                    rng.uniform(-0.3, 0.0, (rows, 2)).astype(np.float32), "test")
    b = GraphBuilder()
    x = b.input("x", np.float32, [1, "S", cols])
    y = from_blocks(b, x, blocks, "head", accuracy_level=4)
    b.op("Identity", [y], outputs=["approx"])
    b.op("Identity", [exact_top(b, x, y, blocks, "head", 5)], outputs=["y"])
    b.output("approx", np.float32, [1, "S", rows])
    b.output("y", np.float32, [1, "S", rows])
    import onnxruntime as ort

    xs = rng.standard_normal((1, 3, cols)).astype(np.float32)
    approx, out = ort.InferenceSession(b.model().SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": xs})
    exact = xs.astype(np.float64) @ blocks.dequantize().astype(np.float64).T
    top = np.argsort(-approx, axis=-1)[..., :5]
    np.testing.assert_allclose(np.take_along_axis(out, top, -1), np.take_along_axis(exact, top, -1), atol=1e-5)
    rest = np.ones_like(out, dtype=bool)
    np.put_along_axis(rest, top, False, -1)
    np.testing.assert_array_equal(out[rest], approx[rest])
    assert np.abs(np.take_along_axis(approx, top, -1) - np.take_along_axis(exact, top, -1)).max() > 1e-4


# The weight fields of int4-b32: its mixes may only change how activations are treated, never the weights.
_WEIGHTS = ("method", "bits", "block_size", "symmetric", "quantize_lm_head", "source_blocks", "bytes_per_weight",
            "flavours")


def test_the_default_and_its_mixes_keep_int4_b32_weights_and_say_their_precision_in_the_manifest():
    """The CPU default (devices/*.json) is int4-b32-a32: the same exact weights as int4-b32 (a GGUF's own blocks,
    `source_blocks`, so nothing is re-quantized), the activation choices written into the manifest."""
    from edge_sdk.devices import DEFAULT_PROFILE, load_profile

    base = get_recipe("int4-b32")
    mixes = [r for r in RECIPES.values() if r.name.startswith("int4-b32-") and r.method == "emit"]
    assert {r.name for r in mixes} >= {"int4-b32-a32", "int4-b32-acc0", "int4-b32-xhead", "int4-b32-a32-head"}
    for r in mixes:
        assert [getattr(r, f) for f in _WEIGHTS] == [getattr(base, f) for f in _WEIGHTS], r.name
        assert r.fp32_activations or r.fp32_last_layers or r.exact_top_k, f"{r.name} is int4-b32 under another name"
    default = get_recipe(load_profile(DEFAULT_PROFILE).recipe)
    assert default.name == "int4-b32-a32"
    m = default.manifest()
    assert (m["recipe"], m["bits"], m["block_size"], m["accuracy_level"], m["lm_head_quantized"]) == \
        ("int4-b32-a32", 4, 32, 4, True)
    assert m["fp32_activations"] == ["*"] and m["exact_top_k"] == 8 and "fp32_last_layers" not in m
    assert get_recipe("int4-b32-a32-last8").manifest()["fp32_last_layers"] == 8
    # int4-b32's manifest section keeps the keys it always had: bundles made before are still read alike
    assert set(base.manifest()) == {"recipe", "description", "bits", "block_size", "symmetric", "accuracy_level",
                                    "method", "lm_head_quantized"}
