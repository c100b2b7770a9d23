"""The GGUF block decoders (exporters/gguf/blocks.py) against gguf-py's dequantizers, which transformers
uses to load a GGUF: every supported format, random bytes, values equal up to one fp32 rounding."""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from edge_sdk.exporters.gguf.blocks import FORMATS, concat_rows, decode  # noqa: E402

# Byte offsets of each format's fp16 fields: random bytes there could be inf/NaN, so they get real values.
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q4_K": [0, 2],
              "Q5_K": [0, 2], "Q6_K": [208]}


def random_tensor(qtype, rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    _, per_block, nbytes, _ = FORMATS[qtype]
    raw = rng.integers(0, 256, (rows * cols // per_block, nbytes), dtype=np.uint8)
    for at in F16_FIELDS[qtype]:
        vals = (rng.standard_normal(raw.shape[0]) * 0.01).astype(np.float16)
        raw[:, at:at + 2] = vals.view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, -1)


def reference(raw, qtype, rows, cols):
    return gguf.quants.dequantize(raw, getattr(gguf.GGMLQuantizationType, qtype)).reshape(rows, cols)


@pytest.mark.parametrize("qtype", sorted(FORMATS))
def test_decoder_matches_gguf_py(qtype):
    rows, cols = 6, 512
    raw = random_tensor(qtype, rows, cols)
    ref = reference(raw, qtype, rows, cols)
    blocks = decode(raw, qtype, (rows, cols))
    assert blocks.codes.max() < (1 << blocks.bits)
    got = blocks.dequantize()
    scale = np.abs(ref).max()
    assert scale > 0
    np.testing.assert_allclose(got, ref, rtol=0, atol=scale * 2e-7)
    # Symmetric formats need no offset at all; the others carry one.
    assert (blocks.offset is None) == (qtype in ("Q4_0", "Q5_0", "Q6_K", "Q8_0"))


def test_mixed_rows_keep_their_values():
    """A packed QKV of Q4_K, Q4_K and Q6_K rows: one 8-bit block-16 format, every value unchanged."""
    parts = [decode(random_tensor(t, 4, 256, seed=i), t, (4, 256)) for i, t in enumerate(["Q4_K", "Q4_K", "Q6_K"])]
    packed = concat_rows(parts)
    assert (packed.bits, packed.block) == (8, 16)
    want = np.concatenate([p.dequantize() for p in parts])
    np.testing.assert_allclose(packed.dequantize(), want, rtol=0, atol=np.abs(want).max() * 2e-7)


def test_wrong_byte_count_is_refused():
    with pytest.raises(ValueError, match="whole blocks"):
        decode(np.zeros(100, np.uint8), "Q4_K", (1, 256))


@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K", "Q6_K"])
def test_k_quant_encoders_round_trip_through_gguf_py(qtype):
    """The test GGUF writer's own k-quant encoders: gguf-py reads back close to the input (a valid
    encoding), and our decoder reads back exactly what gguf-py reads."""
    from edge_sdk.exporters.gguf.write import quantize

    w = np.random.default_rng(3).standard_normal((8, 512)).astype(np.float32) * 0.05
    raw = quantize(w, qtype)
    ref = reference(raw, qtype, 8, 512)
    levels = {"Q4_K": 15, "Q5_K": 31, "Q6_K": 63}[qtype]
    assert np.abs(ref - w).max() < 2.5 * np.abs(w).max() / levels  # on the format's grid, not garbage
    got = decode(raw, qtype, (8, 512)).dequantize()
    np.testing.assert_allclose(got, ref, rtol=0, atol=np.abs(ref).max() * 2e-7)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q4_0", "Q5_K", "Q6_K", "Q8_0"])
def test_graph_reads_blocks_exactly(qtype):
    """from_blocks (MatMulNBits + offset branch) and gather_blocks (GatherBlockQuantized + gathered offsets)
    in onnxruntime give x @ W^T and W's rows for W = the decoded blocks; accuracy level 0 keeps the
    activations in float, so only float rounding remains."""
    import onnxruntime as ort

    from edge_sdk.exporters.graph.builder import GraphBuilder
    from edge_sdk.exporters.graph.linear import from_blocks, gather_blocks

    rows, cols = 16, 256
    blocks = decode(random_tensor(qtype, rows, cols, seed=7), qtype, (rows, cols))
    w = blocks.dequantize()
    b = GraphBuilder()
    x = b.input("x", np.float32, [1, 3, cols])
    ids = b.input("ids", np.int64, [1, 4])
    y = b.op("Identity", [from_blocks(b, x, blocks, "head", accuracy_level=0)], outputs=["y"])
    e = b.op("Identity", [gather_blocks(b, ids, blocks, "head")], outputs=["e"])
    b.output(y, np.float32, [1, 3, rows])
    b.output(e, np.float32, [1, 4, cols])
    sess = ort.InferenceSession(b.model().SerializeToString())
    xv = np.random.default_rng(0).standard_normal((1, 3, cols)).astype(np.float32)
    idv = np.array([[0, 5, 15, 5]])
    got_y, got_e = sess.run(None, {"x": xv, "ids": idv})
    np.testing.assert_allclose(got_e[0], w[idv[0]], rtol=0, atol=np.abs(w).max() * 1e-6)
    np.testing.assert_allclose(got_y, xv @ w.T, rtol=1e-4, atol=np.abs(xv @ w.T).max() * 1e-5)
    assert (blocks.offset is not None) == any(i.name == "head.offsets" for i in b.initializers)
