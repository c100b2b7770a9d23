"""QDQ quantization of the static graphs for the QNN HTP, calibrated on real activations.

The HTP computes in fixed point: every activation needs a calibrated range. Calibration runs token
sequences through the fp32 static graphs with the real host (runtime/static_engine.py), recording
exactly what the device will be fed - ids, positions, masks (padded windows included) and KV
buffers filled by earlier windows - so the ranges cover prefill and decode as they happen.

Recipes (named values, see exporters/recipes.py):
- ``w8a16-qdq``: uint16 activations, uint8 per-channel weights - the QNN HTP's accurate LLM setting.
- ``w4a16-qdq``: uint16 activations, signed int4 weights in blocks of 32 inputs (one fp32 scale per
  block and output column), lm_head at 8 bits per channel (it decides every token). The QNN EP runs
  these as the HTP's block-quantized MatMul. Experimental. On the fake() model it runs fully on the
  simulated HTP and matches the CPU's exact QDQ there (logit cosine 0.9999). Against fp32 it reaches
  0.991, where int4 per output channel reached 0.984 and w8a16 0.9994. On SmolLM2-135M the HTP
  reproduces the CPU token for token, but symmetric round-to-nearest int4 costs +30 % perplexity
  (w8a16: -3.3 %); GGUF's Q4_1 block offsets, which the CPU recipe keeps, would need asymmetric
  blocks. Keeping the embedding table at 8 bits too makes QNN fail to finalize the graph (MEM_ALLOC).

What it takes on a real model (SmolLM2-135M, w8a16, context 256, calibration on chat text; decode
graph on the CPU EP, which reproduces the HTP's QDQ numbers; fp32: perplexity 54.96 on the eval
text, greedy agreement counted over 10 tokens, eos suppressed on both sides; the first prompt's
first token is a near-tie in fp32 itself: logit 25.33 vs 25.24):
- as first shipped (one 8-bit scale per MatMul weight - onnxruntime's QNN config does not do
  per-channel MatMul - and everything 16-bit): agreement 0/10 on all prompts, ppl 5.8e5.
- residual stream float (StaticOps.norm tags it; |x| reaches ~25000 on the attention-sink token
  from layer 11 on): ppl 55.6, eval top-1 84 %, greedy 0/1/2 of 10.
- + outlier nodes float (|range| > 1000: layers 11/28/29 down_proj and its input): ppl 57.4,
  greedy 0/0/0 - per-tensor 8-bit weights cap each projection at ~30-40 dB SNR.
- per-channel weights alone (nothing float): ppl 55.8, top-1 87 %, greedy 0/8/10.
- per-channel + residual + outliers float (the default): ppl 53.1, top-1 91 %, logit cosine 0.998,
  greedy 0/1/10, teacher-forced 9/8/10 of 10. Per-channel alone: teacher-forced 9/9/10.
- + lm_head float: ppl 53.5, top-1 93 %, greedy 0/1/10 (not kept: +85 MB of fp32 weights).
- + every v_proj float: top-1 94 %, greedy 0/1/10; + all attention projections float: top-1 96 %,
  greedy 7(all)/1/10; + every down_proj float: top-1 94 %, greedy 7/1/10.
Prompts 1 and 2 break at fp32 near-ties (top-2 gaps 0.08 and 0.11-0.13 logits); 8-bit weights
leave ~35-40 dB SNR per projection, so no w8 variant holds those ties reliably.

Why the simulated HTP first drifted from the same graph on the CPU (logit cosine 0.84, ppl +41 %),
found by running truncated graphs with every intermediate as an output on both and comparing node
by node against exact QDQ arithmetic (CPU EP, no graph rewrites):
- the CPU EP was not the reference it seemed: by default it rewrites DQ(weight) -> MatMul into
  MatMulNBits with int8 activations, ~41 dB off exact QDQ; runtime/providers.py EXACT_QDQ turns
  that off for QDQ bundles (the figures above predate it);
- the HTP's MatMul of two 16-bit activations (Q.K^T, P.V) is ~40 dB off exact QDQ, which softmax
  amplifies: the attention core now stays float (graph/static.py), fp16 on the HTP;
- the HTP flushes fp16 subnormals, and divides by multiplying with the reciprocal: the norm's
  x / max|x| became 0 on the attention-sink token (max|x| ~ 25000 from layer 12 on) whenever the
  sink was inside a prefill window. The norm now divides twice by sqrt(max|x|).
After both: HTP vs exact QDQ on the CPU 50 dB on the logits of either graph.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from .graph.io import KEEP_FLOAT

# onnx.save refuses protobufs over 2 GB; stay well under it and spill weights to a side file.
EXTERNAL_DATA_BYTES = 1_800_000_000


@dataclass(frozen=True)
class QDQRecipe:
    name: str
    weight_type: str  # onnxruntime QuantType name
    activation_type: str = "QUInt16"
    per_channel: bool = True
    # Weights kept wider than `weight_type`: the embedding table and lm_head decide every token.
    # (16-bit lm_head weights would be better still, but the HTP rejects a16w16 FullyConnected.)
    wide_tensors: tuple[str, ...] = ()
    wide_type: str = "QUInt8"
    # Weights whose consuming nodes stay float (fp16 on the HTP).
    float_weights: tuple[str, ...] = ()
    # Block-quantized projection weights (signed symmetric, one fp32 scale per `block_size` inputs of
    # each output column: DequantizeLinear's block_size). The QNN EP runs these as the HTP's block-
    # quantized MatMul. None: one scale per output column.
    block_size: int | None = None


QDQ_RECIPES = {
    r.name: r for r in (
        QDQRecipe("w8a16-qdq", weight_type="QUInt8"),
        QDQRecipe("w4a16-qdq", weight_type="QInt4", wide_tensors=("lm_head.weight",), block_size=32),
    )
}


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Save one protobuf file, or the graph + ``<name>.data`` when it would pass the 2 GB limit."""
    path = Path(path)
    if model.ByteSize() < EXTERNAL_DATA_BYTES:
        onnx.save(model, str(path))
    else:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=1024)


class FeedsReader:
    """onnxruntime CalibrationDataReader over recorded input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def __iter__(self):  # some calibrators iterate the reader
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def record_calibration_feeds(fp32_dir: Path, fragment: dict, sequences: Sequence[Sequence[int]],
                             decode_tail: int = 8, max_samples: dict[str, int] | None = None) -> dict[str, list[dict]]:
    """Run `sequences` through the fp32 graphs; return the recorded feeds per graph kind.

    Each sequence is prefilled except its last `decode_tail` tokens, which are decoded one by one,
    so both graphs see realistic caches. At most `max_samples[kind]` per graph are kept (evenly
    spaced): each sample carries the whole KV buffer, and the calibrator keeps all its activations.
    """
    from edge_sdk.runtime.static_engine import StaticEngine

    engine = StaticEngine(fragment, fp32_dir)
    recorded: dict[str, list[dict]] = {"prefill": [], "decode": []}
    engine.on_feeds = lambda kind, feeds: recorded[kind].append({k: v.copy() for k, v in feeds.items()})
    _drive(engine, sequences, decode_tail)
    limits = {"prefill": 16, "decode": 48, **(max_samples or {})}
    for kind, feeds in recorded.items():
        if len(feeds) > limits[kind]:
            keep = np.linspace(0, len(feeds) - 1, limits[kind]).round().astype(int)
            recorded[kind] = [feeds[i] for i in keep]
    return recorded


class RangeCollector:
    """Min/max of every float tensor of one graph, folded run by run (see calibrate_ranges)."""

    def __init__(self, model_path: Path):
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            inferred = Path(tmp) / "inferred.onnx"
            model = onnx.load(str(model_path))
            save_model(model, inferred)
            del model
            onnx.shape_inference.infer_shapes_path(str(inferred), str(inferred))
            model = onnx.load(str(inferred))
            floats = {vi.name for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
                      if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
            inits = {t.name for t in model.graph.initializer}
            present = {o.name for o in model.graph.output}
            self.names = [o for n in model.graph.node for o in n.output if o in floats and o not in inits]
            for name in self.names:
                if name not in present:
                    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            save_model(model, inferred)
            del model
            so = ort.SessionOptions()
            so.log_severity_level = 3
            # No graph rewrites: every tensor of the graph being quantized must keep its name.
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.session = ort.InferenceSession(str(inferred), so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs() if i.name in floats]
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.runs = 0

    def add(self, feed: dict[str, np.ndarray]) -> None:
        values = dict(zip(self.names, self.session.run(self.names, feed)))
        values.update({k: feed[k] for k in self.inputs})
        for k, v in values.items():
            a, b = float(v.min()), float(v.max())
            self.lo[k] = min(self.lo.get(k, a), a)
            self.hi[k] = max(self.hi.get(k, b), b)
        self.runs += 1

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {k: (self.lo[k], self.hi[k]) for k in self.lo}


def calibrate_ranges(model_path: Path, feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Min/max of every float tensor of the graph over `feeds`, folded run by run.

    onnxruntime's calibrator keeps every intermediate of every sample until the end (its batched
    variant drops batches in 1.32), which caps how much text calibration can see; folding the
    ranges as we go costs one run's activations. The result also lets several quantization
    variants of one graph share a single calibration pass.
    """
    collector = RangeCollector(Path(model_path))
    for feed in feeds:
        collector.add(feed)
    return collector.ranges()


def record_calibration_ranges(fp32_dir: Path, fragment: dict, sequences: Sequence[Sequence[int]],
                              decode_tail: int = 8) -> tuple[dict[str, dict], dict[str, int]]:
    """Ranges of both static graphs over `sequences`, folded while the fp32 engine runs them.

    Same schedule as record_calibration_feeds, but no feed is kept: each carries the whole KV
    buffer (94 MB per sample for SmolLM2 at context 2048), so storing them capped calibration at a
    few dozen samples; streaming uses every window and every decoded token.
    Returns (ranges per graph kind, runs per graph kind).
    """
    from edge_sdk.runtime.static_engine import StaticEngine

    files = fragment["graph"]["files"]
    collectors = {kind: RangeCollector(Path(fp32_dir) / files[kind]) for kind in ("prefill", "decode")}
    engine = StaticEngine(fragment, fp32_dir)
    engine.on_feeds = lambda kind, feeds: collectors[kind].add(feeds)
    _drive(engine, sequences, decode_tail)
    return {k: c.ranges() for k, c in collectors.items()}, {k: c.runs for k, c in collectors.items()}


def save_ranges(ranges: dict[str, tuple[float, float]], path: Path) -> None:
    """Write ranges as onnxruntime's calibration cache (quantize_static(calibration_cache_path=...))."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    data = TensorsData(CalibrationMethod.MinMax,
                       {k: (np.array(lo, np.float32), np.array(hi, np.float32)) for k, (lo, hi) in ranges.items()})
    save_tensors_data(data, path)


# Activations whose calibrated |range| exceeds this stay float (fp16 on the HTP): with one 16-bit
# grid per tensor, a range of R has steps of 2R/65536, and the tensors that reach these magnitudes
# in LLMs are the sink token's massive activations, while every other token is ~1.
OUTLIER_RANGE = 1000.0


def float_nodes(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                outlier_range: float | None = OUTLIER_RANGE, float_weights: Sequence[str] = ()) -> list[str]:
    """Names of the nodes to leave unquantized: those the emitter tagged KEEP_FLOAT (the residual
    stream), the consumers of the `float_weights` initializers, and, with `outlier_range`, any
    node with a float output whose |range| exceeds it."""
    names = []
    for node in model.graph.node:
        if node.doc_string == KEEP_FLOAT or any(i in float_weights for i in node.input):
            names.append(node.name)
        elif outlier_range is not None and any(
                o in ranges and max(abs(ranges[o][0]), abs(ranges[o][1])) > outlier_range for o in node.output):
            names.append(node.name)
    return names


def quantize_graph(fp32_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]] | None, recipe: str,
                   outlier_range: float | None = OUTLIER_RANGE, keep_float: bool = True,
                   float_weights: Sequence[str] | None = None,
                   ranges: dict[str, tuple[float, float]] | None = None) -> dict:
    """QDQ-quantize one static graph for the QNN HTP with `recipe`, calibrated on `feeds`.

    With `keep_float`, the residual stream and the outlier nodes (see float_nodes) stay float;
    the QNN EP runs them in fp16 on the HTP (its default enable_htp_fp16_precision=1). Returns
    what was kept float. `ranges` (from record_calibration_ranges, on `fp32_path`) replace `feeds`.
    """
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    if recipe not in QDQ_RECIPES:
        raise ValueError(f"unknown QDQ recipe {recipe!r}; known: {', '.join(QDQ_RECIPES)}")
    r = QDQ_RECIPES[recipe]
    model = onnx.load(str(fp32_path))
    present = {t.name for t in model.graph.initializer}
    overrides = {}
    if r.per_channel:
        # One scale per output column of every weight matrix ([in, out], axis 1). onnxruntime's QNN
        # config quantizes MatMul weights per tensor, and one 8-bit scale for a whole LLM weight
        # matrix leaves ~30-40 dB SNR per projection (SmolLM2-135M: greedy 0/10 tokens).
        # Asymmetric uint8 (the recipe's type): measured against signed symmetric int8 on SmolLM2-135M,
        # first prompt's greedy agreement was 10 vs 0 tokens on the CPU EP. The HTP computes these
        # 16x8 projections to within ~75 dB of exact QDQ arithmetic (measured on v_proj).
        for node in model.graph.node:
            if node.op_type == "MatMul" and node.input[1] in present:
                overrides[node.input[1]] = [{"quant_type": getattr(QuantType, r.weight_type), "axis": 1}]
    for name in r.wide_tensors:
        if name in present:
            overrides[name] = [{"quant_type": getattr(QuantType, r.wide_type), **({"axis": 1} if r.per_channel else {})}]
    # qnn_preprocess_model (onnxruntime 1.32) fails on models that carry metadata_props: set them
    # aside and put them back on the quantized graph.
    metadata = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    with tempfile.TemporaryDirectory() as tmp:
        src, pre = Path(tmp) / "in.onnx", Path(tmp) / "pre.onnx"
        save_model(model, src)  # by path: preprocessing a ModelProto rewrites it to point at its temp files
        del model
        # Rewrites patterns the QNN EP handles better; returns False (and writes nothing) if none apply.
        if not qnn_preprocess_model(str(src), str(pre), save_as_external_data=(Path(tmp) / "in.onnx.data").exists(),
                                    all_tensors_to_one_file=True, external_data_location="pre.onnx.data"):
            pre = src
        elif ranges is not None:
            # Ranges were measured on the graph before its rewrite; tensors it renamed have none.
            if feeds is None:
                raise ValueError(f"qnn_preprocess_model rewrote {Path(fp32_path).name}; its precomputed ranges "
                                 "no longer apply - pass calibration feeds instead")
            ranges = None
        if ranges is None:
            ranges = calibrate_ranges(pre, feeds)
        cache = Path(tmp) / "ranges.json"
        save_ranges(ranges, cache)
        fw = r.float_weights if float_weights is None else tuple(float_weights)
        exclude = float_nodes(onnx.load(str(pre), load_external_data=False), ranges, outlier_range, fw) if keep_float else []
        config = get_qnn_qdq_config(
            str(pre), FeedsReader([]),
            activation_type=getattr(QuantType, r.activation_type), weight_type=getattr(QuantType, r.weight_type),
            per_channel=r.per_channel, init_overrides=copy.deepcopy(overrides) or None,
            calibration_providers=["CPUExecutionProvider"], nodes_to_exclude=exclude or None,
        )
        with _quiet_root_logger():  # the quantizer logs generic "consider pre-processing" advice per call
            # The ranges come from calibrate_ranges through onnxruntime's calibration cache.
            quantize_static(str(pre), str(out_path), config.calibration_data_reader,
                            calibrate_method=config.calibrate_method, quant_format=config.quant_format,
                            activation_type=config.activation_type, weight_type=config.weight_type,
                            op_types_to_quantize=config.op_types_to_quantize, nodes_to_quantize=config.nodes_to_quantize,
                            nodes_to_exclude=config.nodes_to_exclude, per_channel=config.per_channel,
                            reduce_range=config.reduce_range, use_external_data_format=any(Path(tmp).glob("*.data")),
                            extra_options=config.extra_options, calibration_cache_path=cache)
    out = onnx.load(str(out_path))
    if r.block_size:
        block_quantize_weights(out, Path(fp32_path), r.block_size, skip=r.wide_tensors)
    for key, value in {**metadata, "edge_sdk.recipe": recipe}.items():
        out.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    save_model(out, Path(out_path))
    outliers = sorted(n for n in exclude if n not in _tagged(out))
    return {"float_nodes": len(exclude), "outlier_nodes": outliers}


def block_quantize_weights(model: onnx.ModelProto, fp32_path: Path, block_size: int,
                           skip: Sequence[str] = ()) -> int:
    """Turn the per-channel int4 projection weights of a QDQ graph into block-quantized ones, in place.

    Each MatMul weight's DequantizeLinear becomes signed symmetric int4 with one scale per
    `block_size` rows (inputs) of each column: axis 0, block_size (opset 21). Values are
    re-quantized from the fp32 weights of `fp32_path` (the graph quantize_graph started from), not
    from the per-channel ints. Per-channel int4 keeps one scale for all 576-1536 inputs of a column;
    blocks of 32 follow the weights' local range. Weights in `skip`, and any whose input count is not
    a multiple of `block_size`, stay as they are. Returns how many weights were converted.
    """
    from onnx import TensorProto, helper, numpy_helper

    fp32 = onnx.load(str(fp32_path))
    originals = {t.name: t for t in fp32.graph.initializer}
    inits = {t.name: t for t in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    converted = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or not node.input[0].endswith("_quantized"):
            continue
        base = node.input[0][: -len("_quantized")]
        weight = inits.get(node.input[0])
        if base in skip or base not in originals or weight is None or weight.data_type != TensorProto.INT4:
            continue
        if not all(c.op_type == "MatMul" and c.input[1] == node.output[0] for c in consumers.get(node.output[0], [])):
            continue
        w = numpy_helper.to_array(originals[base]).astype(np.float32)  # [K, N]
        k, n = w.shape
        if k % block_size:
            continue
        blocks = w.reshape(k // block_size, block_size, n)
        # Symmetric on purpose: uint4 blocks with a zero point each were closer to fp32 on the CPU
        # (fake() model: cosine 0.9927 vs 0.9910), but the simulated HTP computed them wrongly
        # (cosine -0.07 against the CPU, with no error raised).
        scale = np.maximum(np.abs(blocks).max(axis=1) / 7.0, 1e-12).astype(np.float32)  # [K/B, N]
        q = np.clip(np.round(blocks / scale[:, None, :]), -8, 7).astype(np.int8).reshape(k, n)
        weight.CopyFrom(_int4_tensor(node.input[0], q))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale, node.input[1]))
        del node.input[2:]  # symmetric: no zero point
        del node.attribute[:]
        node.attribute.extend([helper.make_attribute("axis", 0), helper.make_attribute("block_size", block_size)])
        converted += 1
    return converted


def _int4_tensor(name: str, q: np.ndarray) -> onnx.TensorProto:
    """An INT4 initializer from int8 values in [-8, 7]: two per byte, the first in the low nibble."""
    nibbles = (q.ravel() & 0x0F).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    t = onnx.TensorProto(name=name, data_type=onnx.TensorProto.INT4, dims=list(q.shape))
    t.raw_data = (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()
    return t


def _tagged(model: onnx.ModelProto) -> set[str]:
    return {n.name for n in model.graph.node if n.doc_string == KEEP_FLOAT}


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_static_pair(fp32_dir: Path, out_dir: Path, fragment: dict, recipe: str,
                         calibration_ids: Sequence[Sequence[int]], progress=None,
                         outlier_range: float | None = OUTLIER_RANGE) -> dict:
    """Quantize the prefill and decode graphs of `fragment`; return the manifest's quantization section."""
    if progress is not None:
        progress.stage(f"calibrating on {len(calibration_ids)} sequences through the fp32 graphs")
    ranges, runs = record_calibration_ranges(fp32_dir, fragment, calibration_ids)
    files = fragment["graph"]["files"]
    kept = {}
    for kind in ("prefill", "decode"):
        if progress is not None:
            progress.stage(f"quantizing the {kind} graph ({recipe}, ranges from {runs[kind]} calibration runs)")
        kept[kind] = quantize_graph(Path(fp32_dir) / files[kind], Path(out_dir) / files[kind], None, recipe,
                                    outlier_range=outlier_range, ranges=ranges[kind])
    r = QDQ_RECIPES[recipe]
    return {
        "recipe": recipe,
        "format": "qdq",
        "activation_type": r.activation_type,
        "weight_type": r.weight_type,
        "per_channel": r.per_channel,
        "block_size": r.block_size,
        "wide_tensors": {name: r.wide_type for name in r.wide_tensors},
        # Unquantized nodes run in fp16 on the HTP: the residual stream (adds + RMSNorm statistics)
        # and nodes whose activations exceed outlier_range (the attention sink's massive activations).
        "float_nodes": {"residual_stream": True, "outlier_range": outlier_range,
                        **{kind: {"count": v["float_nodes"], "outliers": v["outlier_nodes"]} for kind, v in kept.items()}},
        "calibration": {"sequences": len(calibration_ids), "tokens": int(sum(len(s) for s in calibration_ids)),
                        "samples": runs, "method": "minmax (streamed over every window and decode step)"},
    }


def _drive(engine, sequences, decode_tail: int) -> None:
    """Run each sequence as the runtime would: its head through prefill windows, its last
    `decode_tail` tokens one at a time through the decode graph (so both graphs see real inputs)."""
    for seq in sequences:
        seq = list(seq)[: engine.capacity]
        tail = min(decode_tail, max(len(seq) - 2, 0))
        engine.reset()
        engine.forward(seq[: len(seq) - tail])
        for t in seq[len(seq) - tail:]:
            engine.forward([t])
