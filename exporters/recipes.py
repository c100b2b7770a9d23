"""Quantization recipes and graph flavours as named values.

A recipe says how weights are stored; a flavour says which operators express the graph. Both are
written into the manifest and the bundle name. `apply_recipe` turns the fp32 graph an emitter wrote
into the recipe's graph.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    flavours: tuple[str, ...]  # graph flavours the recipe applies to
    bits: int | None = None  # weight bits for block quantization (MatMulNBits)
    block_size: int | None = None
    symmetric: bool = True
    accuracy_level: int | None = None  # MatMulNBits: 4 = int8 activations, the fast CPU path
    quantize_lm_head: bool = True
    # Validation bounds: fp32 must match transformers almost exactly; quantized recipes are held
    # to greedy agreement and a perplexity bound instead (see exporters/validate.py).
    logits_atol: float | None = None
    bytes_per_weight: float = 4.0  # for the memory-fit estimate


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("fp32", "float32 weights - the reference; largest and slowest", ("fused", "static"), logits_atol=1e-3),
        Recipe("int8", "int8 weight-only, block 32 (MatMulNBits bits=8), int8 activations in the matmuls", ("fused",),
               bits=8, block_size=32, accuracy_level=4, bytes_per_weight=1.125),
        Recipe("int4-b32", "int4 weight-only, block 32, symmetric, int8 activations (accuracy level 4); lm_head too",
               ("fused",), bits=4, block_size=32, accuracy_level=4, bytes_per_weight=0.5625),
        Recipe("int4-b64", "int4 weight-only, block 64, symmetric, accuracy level 4", ("fused",),
               bits=4, block_size=64, accuracy_level=4, bytes_per_weight=0.53),
        Recipe("int4-b128", "int4 weight-only, block 128, symmetric, accuracy level 4", ("fused",),
               bits=4, block_size=128, accuracy_level=4, bytes_per_weight=0.516),
        Recipe("w8a16-qdq", "QDQ: uint8 weights, uint16 activations, calibrated - for the QNN HTP NPU", ("static",),
               bytes_per_weight=1.0),
        Recipe("w4a16-qdq", "QDQ: 4-bit block weights, uint16 activations - for the QNN HTP NPU", ("static",),
               bytes_per_weight=0.5625),
    )
}

FLAVOURS = ("fused", "static")


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        from edge_sdk.errors import UnsupportedModelError

        raise UnsupportedModelError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
