"""A GGUF's quantized matrices, matched to the HF weights transformers loaded from it, exactly.

transformers dequantizes a GGUF to fp32 (with gguf-py) and may reorder rows on the way (llama.cpp's
converter permutes Llama's q/k rows; transformers permutes them back). Re-quantizing those fp32 weights
onto another grid loses accuracy (a Q4_1 GGUF re-quantized by onnxruntime cost +25 % perplexity), so
each matrix is instead taken from the file's own blocks (blocks.py) and checked against the weight
transformers loaded:

1. the GGUF tensor for an HF name comes from gguf-py's own name map for the file's architecture;
2. its rows are matched to the HF rows by their exact dequantized bytes (gguf-py's dequantize is
   what transformers ran), which finds any row permutation without knowing the architecture's;
3. the blocks, reordered, are dequantized in their kernel form and compared with the HF weight.

A tensor is used only if all three hold and the difference is float rounding; anything else (F16/F32
tensors, formats without an exact form such as Q2_K, Q3_K, IQ*, a mismatch) is left to the recipe's
quantizer and reported as re-quantized. `source_blocks` is the export's step: it decides whether an
export takes a file's blocks at all (`takes_blocks`) and reports what it took.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .blocks import FORMATS, Blocks, decode

# Differences up to this fraction of a weight's largest magnitude are float rounding (the fp32 add that
# folds the kernel's zero point into the offset); a wrong code or scale is ~1e-2 of it.
ROUNDING = 2e-6


def _name_map(arch: str, n_layers: int):
    import gguf

    names = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in names:
        return None
    return gguf.get_tensor_name_map(names[arch], n_layers)


# fp32 bytes of one slice of rows in the checks below: a matrix is never dequantized whole (Gemma 3's tied
# 262k x 1152 table is 1.2 GB in fp32; its check stays within a few of these slices).
SLICE_BYTES = 64 << 20


def _slices(rows: int, cols: int):
    step = max(1, SLICE_BYTES // (4 * cols))
    return (slice(r, min(r + step, rows)) for r in range(0, rows, step))


def _row_order(raw: np.ndarray, qtype, target: np.ndarray) -> np.ndarray | None:
    """Indices p with dequantize(raw)[p] == target row for row, bytewise; None if some target row is missing.

    `raw` is the GGUF tensor's bytes [rows, bytes per row], dequantized here a slice at a time with gguf-py
    (what transformers ran). The file's order is tried first; rows that moved (llama.cpp permutes Llama's
    q/k rows) are found by a hash of their bytes and each match is then checked byte for byte."""
    import gguf

    rows, cols = target.shape
    if all(np.array_equal(gguf.quants.dequantize(raw[s], qtype).reshape(-1, cols), target[s]) for s in _slices(rows, cols)):
        return np.arange(rows)
    waiting: dict[int, list[int]] = {}
    for i, row in enumerate(target):
        waiting.setdefault(hash(row.tobytes()), []).append(i)
    order = np.full(rows, -1, dtype=np.int64)
    for s in _slices(rows, cols):
        for j, row in enumerate(gguf.quants.dequantize(raw[s], qtype).reshape(-1, cols), start=s.start):
            hits = waiting.get(hash(row.tobytes()))
            if hits:
                order[hits.pop()] = j
    if (order < 0).any():
        return None
    for s in _slices(rows, cols):  # a hash is not bytes: check every match
        if not np.array_equal(gguf.quants.dequantize(raw[order[s]], qtype).reshape(-1, cols), target[s]):
            return None
    return order


class SourceBlocks(Mapping[str, Blocks]):
    """{HF name: Blocks} for the matrices a GGUF gives exactly, decoded when read.

    Decoded codes take a byte per weight (1.1 GB for a 1.1B model) where the file packs them: the emitter
    reads one matrix at a time and the GGUF, mapped by gguf-py, stays the only full copy."""

    def __init__(self) -> None:
        self._taken: dict[str, tuple[np.ndarray, str, tuple[int, int], np.ndarray | None]] = {}

    def add(self, name: str, raw: np.ndarray, qtype: str, shape: tuple[int, int], order: np.ndarray | None) -> None:
        """`raw`: the tensor's bytes [rows, bytes per row] (a view of the mapped file); `order`: the file row of
        each HF row, None if they are the same."""
        self._taken[name] = (raw, qtype, shape, order)

    def __getitem__(self, name: str) -> Blocks:
        raw, qtype, shape, order = self._taken[name]
        blocks = decode(raw, qtype, shape)
        return blocks if order is None else blocks.take(order)

    def __delitem__(self, name: str) -> None:
        del self._taken[name]

    def __iter__(self):
        return iter(self._taken)

    def __len__(self) -> int:
        return len(self._taken)


def _max_diff(raw: np.ndarray, qtype: str, order: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max |decoded blocks - want|, max |want|), a slice of rows at a time."""
    rows, cols = want.shape
    diff = peak = 0.0
    for s in _slices(rows, cols):
        got = decode(raw[order[s]], qtype, (len(order[s]), cols)).dequantize()
        diff = max(diff, float(np.abs(got - want[s]).max()))
        peak = max(peak, float(np.abs(want[s]).max()))
    return diff, peak


def read_source_blocks(path: Path, arch: str, n_layers: int, weights: Mapping[str, np.ndarray],
                       names: Iterable[str]) -> tuple[SourceBlocks, dict[str, dict[str, Any]]]:
    """({HF name: Blocks} for the matrices taken exactly, {HF name: report}) for the HF weights `names`.

    `weights` are the fp32 weights transformers loaded from the same file: the reference each tensor
    is checked against."""
    import gguf

    name_map = _name_map(arch, n_layers)
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    taken = SourceBlocks()
    report: dict[str, dict[str, Any]] = {}
    for hf in names:
        base = hf.removesuffix(".weight")
        g = name_map.get_name(base) if name_map is not None else None
        t = tensors.get(f"{g}.weight") if g else None
        if t is None:
            report[hf] = {"gguf": None, "exact": False, "why": "no GGUF tensor of this name"}
            continue
        qtype = t.tensor_type.name
        entry: dict[str, Any] = {"gguf": t.name, "type": qtype}
        report[hf] = entry
        want = np.asarray(weights[hf], dtype=np.float32)
        shape = (int(np.prod([int(n) for n in t.shape[1:]])), int(t.shape[0]))
        if qtype not in FORMATS:
            entry.update(exact=False, why=f"{qtype} has no exact int4/int8 block form here")
            continue
        if shape != want.shape:
            entry.update(exact=False, why=f"GGUF shape {shape} differs from transformers' {tuple(want.shape)}")
            continue
        raw = np.asarray(t.data).reshape(shape[0], -1)  # a view of the mapped file, a row of blocks per row
        order = _row_order(raw, t.tensor_type, want)
        if order is None:
            entry.update(exact=False, why="rows differ from the weight transformers loaded")
            continue
        diff, peak = _max_diff(raw, qtype, order, want)
        form = decode(raw[:1], qtype, (1, shape[1]))  # one row says the kernel format
        reordered = bool((order != np.arange(len(order))).any())
        entry.update(stored=f"int{form.bits}-b{form.block}" + ("+offset" if form.offset is not None else ""),
                     max_abs_diff=diff, reordered=reordered)
        if diff > ROUNDING * max(peak, 1e-30):
            entry.update(exact=False, why=f"decoded blocks differ by {diff:.3g}")
            continue
        entry["exact"] = True
        taken.add(hf, raw, qtype, shape, order if reordered else None)
    return taken, report


def keep_whole_groups(taken: dict[str, Blocks], report: dict[str, dict[str, Any]],
                      groups: Iterable[Iterable[str]]) -> None:
    """Packed weights (q/k/v, gate/up) run as one kernel: if one part must be re-quantized, so are the
    others. Drops those from `taken` and says why in the report, so the report describes the bundle."""
    for group in groups:
        group = list(group)
        missing = [n for n in group if n not in taken]
        if not missing or len(missing) == len(group):
            continue
        for name in group:
            if name in taken:
                del taken[name]
                report[name].update(exact=False, why=f"packed with {missing[0]}, which is re-quantized")


def summarize(report: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per GGUF type: how many tensors were taken exactly and how many re-quantized; the largest difference."""
    by_type: dict[str, dict[str, Any]] = {}
    for entry in report.values():
        row = by_type.setdefault(entry.get("type") or "missing", {"exact": 0, "requantized": 0, "max_abs_diff": 0.0})
        row["exact" if entry.get("exact") else "requantized"] += 1
        row["max_abs_diff"] = max(row["max_abs_diff"], float(entry.get("max_abs_diff", 0.0)))
    return by_type


def takes_blocks(src, recipe, flavour: str, *, merged: bool) -> bool:
    """Whether this export keeps a GGUF's own blocks: a GGUF source, a recipe of int4-b32's weights (the CPU
    default and its activation mixes: their emitter writes int4 blocks with offsets and an int8 head, the forms the GGUF formats map to exactly), the fused
    graph, and weights that are still the file's (a merged adapter changes every matrix it touches)."""
    return src.kind == "gguf" and recipe.source_blocks and flavour == "fused" and not merged


def source_blocks(src, args, weights: Mapping[str, np.ndarray], recipe, flavour: str, *, merged: bool,
                  progress) -> tuple[dict[str, Blocks], dict[str, Any]]:
    """The GGUF's own quantized blocks for the matrices that have an exact int4/int8 form, used as they are,
    not re-quantized. Returns ({HF name: Blocks}, the manifest's quantization entries: `gguf_import`)."""
    if not takes_blocks(src, recipe, flavour, merged=merged):
        return {}, {}
    from edge_sdk.runtime.lora import SLOTS

    progress.stage("reading the GGUF's quantized blocks (taken exactly, checked against transformers' weights)")
    names = [n for n in args.expected_weights() if weights[n].ndim == 2]
    blocks, report = read_source_blocks(src.path, src.provenance.get("gguf_arch") or args.model_type,
                                        args.num_hidden_layers, weights, names)
    keep_whole_groups(blocks, report, ([args.weight_name(lg, i) for lg in packed] for packed in SLOTS.values()
                                       for i in range(args.num_hidden_layers)))
    summary = summarize(report)
    for qtype, row in summary.items():
        progress.note(f"GGUF {qtype}: {row['exact']} tensors taken exactly (max |difference| {row['max_abs_diff']:.2g}), "
                      f"{row['requantized']} re-quantized as {recipe.name}")
    for name, entry in report.items():
        if not entry.get("exact") and entry.get("type") is not None:
            progress.note(f"  {name} ({entry['type']}): {entry['why']}")
    # Fused checkpoint tensors (Phi-3's qkv_proj) split into the rows the emitter reads, as the weights were.
    return args.prepare_weights(blocks), {"gguf_import": {"summary": summary, "tensors": report}}
