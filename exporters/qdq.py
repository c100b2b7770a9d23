"""QDQ quantization of the static graphs for the QNN HTP, calibrated on real activations.

The HTP computes in fixed point: every activation needs a calibrated range. Calibration runs token
sequences through the fp32 static graphs with the real host (runtime/static_engine.py), recording
exactly what the device will be fed - ids, positions, masks (padded windows included) and KV
buffers filled by earlier windows - so the ranges cover prefill and decode as they happen.

Recipes (named values, see exporters/recipes.py):
- ``w8a16-qdq``: uint16 activations, uint8 per-channel weights - the QNN HTP's accurate LLM setting.
- ``w4a16-qdq``: uint16 activations, int4 per-channel weights, lm_head at 8 bits (it decides every
  token). Experimental: it runs fully on the simulated HTP, but there its logits drift much further
  from fp32 than the same graph on the CPU EP (cosine 0.91 vs 0.98 on the fake() model), and
  keeping the embedding table at 8 bits too makes QNN fail to finalize the graph (MEM_ALLOC).
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


QDQ_RECIPES = {
    r.name: r for r in (
        QDQRecipe("w8a16-qdq", weight_type="QUInt8"),
        QDQRecipe("w4a16-qdq", weight_type="QInt4", wide_tensors=("lm_head.weight",)),
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
    for seq in sequences:
        seq = list(seq)[: engine.capacity]
        tail = min(decode_tail, max(len(seq) - 2, 0))
        engine.reset()
        engine.forward(seq[: len(seq) - tail])
        for t in seq[len(seq) - tail:]:
            engine.forward([t])
    limits = {"prefill": 16, "decode": 48, **(max_samples or {})}
    for kind, feeds in recorded.items():
        if len(feeds) > limits[kind]:
            keep = np.linspace(0, len(feeds) - 1, limits[kind]).round().astype(int)
            recorded[kind] = [feeds[i] for i in keep]
    return recorded


def quantize_graph(fp32_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]], recipe: str) -> None:
    """QDQ-quantize one static graph for the QNN HTP with `recipe`, calibrated on `feeds`."""
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    if recipe not in QDQ_RECIPES:
        raise ValueError(f"unknown QDQ recipe {recipe!r}; known: {', '.join(QDQ_RECIPES)}")
    r = QDQ_RECIPES[recipe]
    model = onnx.load(str(fp32_path))
    present = {t.name for t in model.graph.initializer}
    overrides = {name: [{"quant_type": getattr(QuantType, r.wide_type)}] for name in r.wide_tensors if name in present}
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
        config = get_qnn_qdq_config(
            str(pre), FeedsReader(feeds),
            activation_type=getattr(QuantType, r.activation_type), weight_type=getattr(QuantType, r.weight_type),
            per_channel=r.per_channel, init_overrides=copy.deepcopy(overrides) or None,
            calibration_providers=["CPUExecutionProvider"],
        )
        config.use_external_data_format = any(Path(tmp).glob("*.data"))
        # Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 it drops the collected batches instead of
        # folding them into the ranges. The calibrator keeps every activation of every sample, which
        # is why record_calibration_feeds caps the sample count.
        with _quiet_root_logger():  # the quantizer logs generic "consider pre-processing" advice per call
            quantize(str(pre), str(out_path), config)
    out = onnx.load(str(out_path))
    for key, value in {**metadata, "edge_sdk.recipe": recipe}.items():
        out.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    save_model(out, Path(out_path))


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
                         calibration_ids: Sequence[Sequence[int]]) -> dict:
    """Quantize the prefill and decode graphs of `fragment`; return the manifest's quantization section."""
    feeds = record_calibration_feeds(fp32_dir, fragment, calibration_ids)
    files = fragment["graph"]["files"]
    for kind in ("prefill", "decode"):
        quantize_graph(Path(fp32_dir) / files[kind], Path(out_dir) / files[kind], feeds[kind], recipe)
    r = QDQ_RECIPES[recipe]
    return {
        "recipe": recipe,
        "format": "qdq",
        "activation_type": r.activation_type,
        "weight_type": r.weight_type,
        "per_channel": r.per_channel,
        "wide_tensors": {name: r.wide_type for name in r.wide_tensors},
        "calibration": {"sequences": len(calibration_ids), "tokens": int(sum(len(s) for s in calibration_ids)),
                        "samples": {k: len(v) for k, v in feeds.items()}, "method": "minmax"},
    }
