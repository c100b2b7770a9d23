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
    # "emit": the emitter writes the weights in this format (exporters/graph/linear.py);
    # "ort-nbits": onnxruntime's MatMulNBits quantizer rewrites the fp32 graph; "qdq": the NPU path.
    method: str = "emit"
    bits: int | None = None  # weight bits for block quantization (MatMulNBits)
    block_size: int | None = None
    symmetric: bool = True
    accuracy_level: int | None = None  # MatMulNBits: 4 = int8 activations, the fast CPU path
    quantize_lm_head: bool = True
    # Validation bounds: fp32 must match transformers almost exactly; quantized recipes are held
    # to greedy agreement and a perplexity bound instead (see exporters/validate.py).
    logits_atol: float | None = None
    # Perplexity on the built-in eval text may exceed transformers fp32 by at most this fraction.
    max_ppl_increase: float = 0.05
    bytes_per_weight: float = 4.0  # for the memory-fit estimate


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("fp32", "float32 weights - the reference; largest and slowest", ("fused", "static"), logits_atol=1e-3,
               max_ppl_increase=0.001),
        # The CPU default. A block's weights as d * q + m (q in 0..15) is the GGUF Q4_1 layout, so a
        # Q4_1 GGUF is reproduced exactly instead of being re-quantized onto a second 4-bit grid
        # (which cost SmolLM2-135M +33 % perplexity); measured in docs/benchmarks.md.
        # From a quantized GGUF, each matrix whose format has an exact block form keeps the file's own
        # blocks instead (Q4_0/Q4_1/Q4_K as int4, Q5_x/Q6_K/Q8_0 as int8; exporters/gguf/blocks.py).
        Recipe("int4-b32", "int4 blocks of 32 with a float offset per block (Q4_1 layout), lm_head int8 (Q8_0 layout), "
               "embedding read from the int8 head when tied (else fp16), int8 activations (accuracy level 4); from a "
               "quantized GGUF, the file's own blocks wherever they have an exact int4/int8 form", ("fused",),
               bits=4, block_size=32, symmetric=False, accuracy_level=4, bytes_per_weight=0.625),
        Recipe("int4-b32-sym", "onnxruntime's MatMulNBits quantizer: int4 block 32 symmetric, lm_head int4, accuracy level 4",
               ("fused",), method="ort-nbits", bits=4, block_size=32, accuracy_level=4, bytes_per_weight=0.5625),
        Recipe("int4-b32-asym", "onnxruntime's MatMulNBits quantizer: int4 block 32 with uint4 zero points, accuracy level 4",
               ("fused",), method="ort-nbits", bits=4, block_size=32, symmetric=False, accuracy_level=4, bytes_per_weight=0.59),
        Recipe("int4-b64", "onnxruntime's MatMulNBits quantizer: int4 block 64 symmetric, accuracy level 4", ("fused",),
               method="ort-nbits", bits=4, block_size=64, accuracy_level=4, bytes_per_weight=0.53),
        Recipe("int4-b128", "onnxruntime's MatMulNBits quantizer: int4 block 128 symmetric, accuracy level 4", ("fused",),
               method="ort-nbits", bits=4, block_size=128, accuracy_level=4, bytes_per_weight=0.516),
        Recipe("int8", "int8 blocks of 32, symmetric (Q8_0 layout), embedding read from the head when tied (else fp16), "
               "accuracy level 4", ("fused",),
               bits=8, block_size=32, accuracy_level=4, bytes_per_weight=1.125),
        Recipe("w8a16-qdq", "QDQ: uint8 weights per output channel, uint16 activations, residual stream float - "
               "for the QNN HTP NPU", ("static",), method="qdq", bytes_per_weight=1.0, max_ppl_increase=0.10),
        Recipe("w4a16-qdq", "QDQ: int4 weights in blocks of 32 (fp32 scales), uint16 activations - for the QNN "
               "HTP NPU (experimental)", ("static",), method="qdq", bytes_per_weight=0.625, max_ppl_increase=0.10),
    )
}

FLAVOURS = ("fused", "static")


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        from edge_sdk.errors import UnsupportedModelError

        raise UnsupportedModelError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def emitter_options(recipe: Recipe) -> dict:
    """Keyword arguments for `emit_decoder` that write the recipe's weight formats directly."""
    import numpy as np

    from .graph import linear as L

    if recipe.method != "emit" or recipe.name == "fp32":
        return {}
    if recipe.bits == 4:
        body = L.make_int4_offset(recipe.block_size, recipe.accuracy_level)
        head = L.make_int8_sym(recipe.block_size, recipe.accuracy_level)
        return {"linear": L.by_name(body, lm_head=head), "embed_dtype": np.float16,
                "tied_embed": L.make_int8_gather(recipe.block_size)}
    if recipe.bits == 8:
        return {"linear": L.make_int8_sym(recipe.block_size, recipe.accuracy_level), "embed_dtype": np.float16,
                "tied_embed": L.make_int8_gather(recipe.block_size)}
    raise ValueError(f"recipe {recipe.name!r} has no emitter format")
