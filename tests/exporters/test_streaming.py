"""The export streams its weights, so a 1.1B model exports within a laptop's RAM (issue 26): the graph's
weights go to disk as they are made (exporters/graph/builder.py) and a GGUF's blocks are checked and decoded
one matrix at a time (exporters/gguf/weights.py). Pinned on a tiny random Llama written as a Q4_0 GGUF:

- the peak of the numpy arrays allocated while the GGUF's blocks are checked is a few matrices' size, not the
  model's (tracemalloc sees numpy's buffers);
- the emitted graph holds no weight bytes (protobuf's own memory is invisible to tracemalloc, so its size is
  checked directly);
- the streamed bundle computes what the in-memory graph computes, bit for bit."""
import tracemalloc

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")

from edge_sdk.exporters.gguf.write import write_model_gguf  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402

# 64 narrow layers, so that the whole model is many times its largest matrix (gate_up: 1024 x 128): what one
# matrix at a time costs (gguf-py's dequantization intermediates included) stays far below the whole model.
SHAPE = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 64, "num_attention_heads": 2,
         "num_key_value_heads": 1, "head_dim": 64, "vocab_size": 512}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from edge_sdk.exporters.sources import resolve

    root = tmp_path_factory.mktemp("streaming")
    hf = make_tiny_model_dir(root / "hf", "llama", **SHAPE)
    (root / "gguf").mkdir()
    path = write_model_gguf(hf, root / "gguf" / "tiny.Q4_0.gguf", lambda name, w: "Q4_0")
    src = resolve(str(path))
    model = src.load_model()
    weights = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    return src, weights


def _traced_peak(fn):
    """(fn's result, the peak bytes of traced allocations above what was live when it started)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _emit(src, weights, blocks, weights_file=None):
    from edge_sdk.exporters.graph.decoder import emit_decoder
    from edge_sdk.exporters.recipes import emitter_options, get_recipe

    return emit_decoder(src.args, weights, "fused", max_context=64, source_blocks=blocks, weights_file=weights_file,
                        **emitter_options(get_recipe("int4-b32")))


def _read(src, weights):
    from edge_sdk.exporters.gguf.weights import source_blocks
    from edge_sdk.exporters.progress import Progress
    from edge_sdk.exporters.recipes import get_recipe

    return source_blocks(src, src.args, weights, get_recipe("int4-b32"), "fused", merged=False,
                         progress=Progress(enabled=False))


def test_blocks_are_checked_and_emitted_one_matrix_at_a_time(source, tmp_path):
    src, weights = source
    matrices = [w for w in weights.values() if w.ndim == 2]
    largest = max(w.nbytes for w in matrices) * 2  # gate_up: two matrices packed into one kernel, fp32
    model_bytes = sum(w.nbytes for w in matrices)
    # Holding every matrix's decoded codes (a byte per weight) would take model_bytes / 4; a matrix at a time
    # (its fp32 slice and gguf-py's intermediates, a few times `largest`) stays below half of that.
    bound = model_bytes / 8
    assert bound > 12 * largest  # the bound separates "a few matrices" from "the model"

    (blocks, report), read_peak = _traced_peak(lambda: _read(src, weights))
    tensors = report["gguf_import"]["tensors"]
    assert len(blocks) == len(tensors) and all(e["exact"] for e in tensors.values())
    # gguf-py's reader makes Python objects per tensor and field (~7 KB a tensor here, no weight bytes: the
    # data stays mapped); that part of the peak is the reader's, measured on its own.
    _, reader = _traced_peak(lambda: [np.asarray(t.data) for t in gguf.GGUFReader(str(src.path)).tensors])
    assert read_peak - reader < bound, (read_peak, reader, largest, model_bytes)

    out = tmp_path / "streamed"
    out.mkdir()
    # Emitting, the weights leave as they are made: the graph proto (protobuf's memory, which tracemalloc does
    # not see) is measured directly, and the weights file holds every matrix.
    model = _emit(src, weights, blocks, out / "model.onnx.data")
    # The graph file is nodes and small constants only (~5 KB a layer): every matrix is in the weights file
    # already. Holding them, it would take at least their 4-bit codes, model_bytes / 8.
    assert model.ByteSize() < model_bytes / 64, model.ByteSize()
    assert (out / "model.onnx.data").stat().st_size > model_bytes / 8 * 0.9  # 4-bit codes + scales of every matrix


def test_the_streamed_graph_computes_what_the_in_memory_graph_computes(source, tmp_path):
    import onnxruntime as ort

    from edge_sdk.exporters.bundle import save_onnx

    src, weights = source
    blocks, _ = _read(src, weights)
    a, b = tmp_path / "streamed", tmp_path / "in-memory"
    a.mkdir()
    b.mkdir()
    save_onnx(_emit(src, weights, blocks, a / "model.onnx.data"), a, "model.onnx")
    save_onnx(_emit(src, weights, blocks), b, "model.onnx")
    args = src.args
    ids = np.array([[1, 7, 42, 99, 3, 250, 17]], dtype=np.int64)
    feed = {"input_ids": ids, "seqlens_k": np.array([ids.shape[1] - 1], np.int32),
            "total_sequence_length": np.array(ids.shape[1], np.int32), "num_logits_to_keep": np.array([3], np.int64)}
    for i in range(args.num_hidden_layers):
        for kind in ("key", "value"):
            feed[f"past_key_values.{i}.{kind}"] = np.zeros((1, args.num_key_value_heads, 0, args.head_dim), np.float32)
    outs = []
    for folder in (a, b):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
        outs.append(sess.run(["logits"], feed)[0])
    assert outs[0].shape == (1, 3, args.vocab_size) and np.abs(outs[0]).max() > 0
    np.testing.assert_array_equal(outs[0], outs[1])


def test_an_initializer_added_twice_is_checked_against_its_first_contents(tmp_path):
    """The tied embedding gathers from the head's table: the builder writes it once, and refuses a second
    initializer of that name with other bytes (as the in-memory builder does)."""
    from edge_sdk.exporters.graph.builder import GraphBuilder

    b = GraphBuilder(weights_file=tmp_path / "w.data")
    table = np.arange(2048, dtype=np.float32).reshape(64, 32)
    assert b.weight("head", table) == "head" == b.weight("head", table.copy())
    with pytest.raises(ValueError, match="added twice"):
        b.weight("head", table + 1)
    b.model()
    assert (tmp_path / "w.data").stat().st_size == table.nbytes
