"""The quantized KV cache of the fused graph (`edge-sdk export --kv-cache int8|int4`).

onnxruntime's CPU GroupQueryAttention (1.32) stores keys and values as int8, or as two 4-bit values per
byte, when its node has `kv_cache_bit_width`, `k_quant_type`/`v_quant_type` and `k_scale`/`v_scale`
inputs. Measured against a numpy model of the op (docs/benchmarks.md, the KV-cache section): every new
key and value is quantized symmetric, per channel, with the node's *static* scales, rounded to nearest
and saturated at [-2^(b-1), 2^(b-1) - 1] (int4: stored + 8, low nibble first), and attention reads the
dequantized values, the prompt's own rows included. The cache stays one preallocated buffer per layer
and kind, written in place, so the runtime's verbs (append, rewind, reset) do not change.

The scales are ours to choose, so they are calibrated here, on the bundle's own float-cache graph run
over the calibration prompts: values per channel by their largest magnitude; keys by the largest
magnitude any calibration key could take at *any* position of the context. Keys are stored after RoPE,
which turns channel i and channel i + rotary_dim/2 into each other by an angle that grows with the
position; a short calibration prompt sees only small angles in the slow pairs, so each key is
unrotated and swept over every angle the bundle's maximum context reaches (`key_bound`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_sdk.runtime.kv_cache import KV_FORMATS

# Perplexity a quantized cache may add to the recipe's own bound at export validation (docs/benchmarks.md has
# the measured figures: int8 holds on SmolLM2-135M, -0.2 % over a full 1024-token context; int4, 16 levels
# under a static per-channel scale, does not: +9 % there).
MAX_PPL_INCREASE = {"float": 0.0, "int8": 0.01, "int4": 0.05}
_SWEEP_SAMPLES = 128  # angles per slow pair: the bound is off by at most (pi/128)^2/2 ~ 3e-4 of the pair's norm


@dataclass
class Calibration:
    """Per layer, kv head and channel: the largest magnitude of keys (at any position) and values."""

    keys: np.ndarray  # [layers, kv_heads, head_dim]
    values: np.ndarray  # [layers, kv_heads, head_dim]
    tokens: int  # calibration tokens run


def key_bound(keys: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray, capacity: int) -> np.ndarray:
    """The largest |key| per channel over every position in [0, capacity) the cached keys could be moved to.

    keys [heads, n, head_dim] as GroupQueryAttention caches them (rotated, non-interleaved, the first
    2 * len(inv_freq) channels rotary), at `positions` [n]; inv_freq [rotary_dim/2] radians per position.
    Returns [heads, head_dim]."""
    half = len(inv_freq)
    out = np.abs(keys).max(axis=1)  # the channels past rotary_dim are not rotated: their own maximum
    if half == 0 or keys.shape[1] == 0:
        return out
    x1, x2 = keys[..., :half].astype(np.float64), keys[..., half:2 * half].astype(np.float64)
    angle = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [n, half]
    c, s = np.cos(angle), np.sin(angle)
    a, b = x1 * c + x2 * s, x2 * c - x1 * s  # unrotated: the key's pair as at position 0
    reach = np.minimum((capacity - 1) * inv_freq, 2 * np.pi)  # [half] angles the context reaches
    theta = np.linspace(0.0, 1.0, _SWEEP_SAMPLES + 1)[:, None] * reach[None, :]  # [samples, half]
    ct, st = np.cos(theta), np.sin(theta)
    first = np.zeros(out.shape[:1] + (half,))
    second = np.zeros_like(first)
    for j in range(keys.shape[1]):  # per token: [samples, half] at a time, memory bounded by the sweep
        first = np.maximum(first, np.abs(a[:, j, None] * ct - b[:, j, None] * st).max(axis=1))
        second = np.maximum(second, np.abs(b[:, j, None] * ct + a[:, j, None] * st).max(axis=1))
    full = reach >= 2 * np.pi  # a full turn: exactly the pair's norm (the grid only approximates it)
    norm = np.sqrt(a ** 2 + b ** 2).max(axis=1)
    out[:, :half] = np.where(full, norm, first)
    out[:, half:2 * half] = np.where(full, norm, second)
    return out


def calibrate(folder: Path, fragment: dict[str, Any], vocab_size: int, inv_freqs: Sequence[np.ndarray],
              sequences: Sequence[Sequence[int]]) -> Calibration:
    """Run the float-cache fused graph in `folder` (manifest `fragment`: its graph and kv_cache sections)
    over `sequences`; inv_freqs: per layer, the RoPE frequencies GroupQueryAttention rotates its keys with."""
    from edge_sdk.runtime.engine import FusedEngine
    from edge_sdk.runtime.providers import SessionConfig

    manifest = {**fragment, "architecture": {"vocab_size": vocab_size}}
    engine = FusedEngine(manifest, folder, SessionConfig(release_pages=False))
    kv = fragment["kv_cache"]
    capacity = fragment["graph"]["max_context"]
    shape = (kv["num_layers"], kv["num_kv_heads"], kv["head_dim"])
    keys, values = np.zeros(shape), np.zeros(shape)
    tokens = 0
    for ids in sequences:
        ids = list(ids)[:capacity]
        engine.reset()
        engine.forward(ids)
        n = engine.offset
        tokens += n
        arrays = engine.cache._arrays  # [1, kv_heads, capacity, head_dim] per layer and kind
        for layer in range(kv["num_layers"]):
            k, v = arrays[2 * layer][0, :, :n], arrays[2 * layer + 1][0, :, :n]
            keys[layer] = np.maximum(keys[layer], key_bound(k, np.arange(n), inv_freqs[layer], capacity))
            values[layer] = np.maximum(values[layer], np.abs(v).max(axis=1))
    del engine
    return Calibration(keys, values, tokens)


def scales(bound: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric scales [.., head_dim] that map `bound` onto the largest code (127 or 7)."""
    top = 2 ** (bits - 1) - 1
    return (np.maximum(bound, 1e-12) / top).astype(np.float32)


def quantize_cache_io(model: onnx.ModelProto, calibration: Calibration, fmt: str) -> onnx.ModelProto:
    """Give `model`'s GroupQueryAttention nodes a quantized cache: the `past_*`/`present_*` graph inputs and
    outputs in the format's element type (an int4 cache holds head_dim/2 bytes per position), per-channel
    k_scale/v_scale initializers [1, kv_heads, 1, head_dim], and the op's quantization attributes.

    Edits the graph's small protobuf only: the weights (external data) are not read or rewritten."""
    kind = KV_FORMATS[fmt]
    if kind.bits is None:
        return model
    elem = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}[kind.dtype]
    g = model.graph
    caches: set[str] = set()
    for node in g.node:
        if node.op_type != "GroupQueryAttention":
            continue
        past_key = node.input[3]
        layer = _layer_of(past_key)
        caches.update([node.input[3], node.input[4], node.output[1], node.output[2]])
        names = []
        for what, bound in (("k_scale", calibration.keys[layer]), ("v_scale", calibration.values[layer])):
            name = f"model.layers.{layer}.attn.kv_cache.{what}"
            g.initializer.append(numpy_helper.from_array(scales(bound, kind.bits)[None, :, None, :], name))
            names.append(name)
        inputs = list(node.input) + [""] * (12 - len(node.input))  # k_scale, v_scale are inputs 12 and 13
        del node.input[:]
        node.input.extend(inputs[:12] + names)
        node.attribute.extend([helper.make_attribute("k_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("v_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("kv_cache_bit_width", kind.bits)])
    for value in list(g.input) + list(g.output):
        if value.name in caches:
            t = value.type.tensor_type
            t.elem_type = elem
            head = t.shape.dim[3]
            head.dim_value = head.dim_value // kind.values_per_element
    if not caches:
        raise ValueError("the graph has no GroupQueryAttention node: a quantized KV cache needs the fused flavour")
    return model


def _layer_of(name: str) -> int:
    """The layer number in a KV name built by graph.io.kv_names ("past_key_values.{layer}.key")."""
    from .io import KV_TEMPLATES

    prefix = KV_TEMPLATES["past"].split("{layer}")[0]
    return int(name[len(prefix):].split(".")[0])


def manifest_section(fmt: str, calibration: Calibration | None) -> dict[str, Any]:
    """The kv_cache fields the runtime reads (format, dtype) and what the scales were calibrated on."""
    kind = KV_FORMATS[fmt]
    if kind.bits is None:
        return {"format": "float", "dtype": "float32"}
    return {"format": fmt, "dtype": kind.dtype,
            "quantization": {"bits": kind.bits, "granularity": "per-channel", "symmetric": True,
                             "scales": "static, in the graph (k_scale/v_scale of each GroupQueryAttention)",
                             "calibration_tokens": calibration.tokens if calibration else 0,
                             "key_bound": "any position up to max_context (RoPE-aware)"}}


def requantize_bundle(src: Path, dst: Path, fmt: str, sequences: Sequence[Sequence[int]]) -> dict[str, Any]:
    """A copy of the float-cache bundle `src` at `dst` with a `fmt` cache: the exporter's calibration and
    graph rewrite, without re-exporting (benchmarks and tests compare formats over the same weights).
    RoPE frequencies from the manifest's rope_theta (plain RoPE: no scaling, no partial rotary, no
    sliding layers). Not validated against transformers: `edge-sdk export --kv-cache` does that."""
    import shutil

    from edge_sdk.runtime.bundle import read_manifest

    from ..bundle import write_manifest

    manifest = read_manifest(Path(src))
    arch, kv = manifest["architecture"], manifest["kv_cache"]
    if KV_FORMATS[kv.get("format", "float")].bits is not None:
        raise ValueError(f"{src} already has a {kv['format']} KV cache: start from a float-cache bundle")
    if arch.get("rope_scaling") or arch.get("layer_types") or float(arch.get("partial_rotary_factor") or 1) != 1:
        raise ValueError("requantize_bundle handles plain RoPE only: re-export with --kv-cache instead")
    shutil.copytree(src, dst)
    head_dim = kv["head_dim"]
    inv = 1.0 / (float(arch["rope_theta"]) ** (np.arange(0, head_dim, 2) / head_dim))
    calibration = calibrate(Path(dst), manifest, arch["vocab_size"], [inv] * kv["num_layers"], sequences)
    path = Path(dst) / manifest["graph"]["files"]["decoder"]
    onnx.save_model(quantize_cache_io(onnx.load(str(path), load_external_data=False), calibration, fmt), str(path))
    manifest["kv_cache"].update(manifest_section(fmt, calibration))
    write_manifest(Path(dst), manifest)
    return manifest


def calibration_sequences(encode) -> list[list[int]]:
    """The exporter's calibration prompts (exporters/npu_export.py) through `encode(prompt, raw=...)`: a
    loaded bundle's `Model.encode_prompt`, whose ids match the source tokenizer's (validated at export)."""
    from ..npu_export import CALIBRATION_CHATS, CALIBRATION_TEXT, CALIBRATION_TURN

    (q1, a1), q2 = CALIBRATION_TURN
    seqs = [encode([{"role": "user", "content": c}]) for c in CALIBRATION_CHATS]
    seqs.append(encode([{"role": "user", "content": q1}, {"role": "assistant", "content": a1},
                        {"role": "user", "content": q2}]))
    seqs.append(encode(CALIBRATION_TEXT, raw=True))
    return [list(s) for s in seqs]
