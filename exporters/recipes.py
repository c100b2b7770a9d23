"""Quantization recipes and graph flavours as named values.

A recipe says how weights are stored; a flavour says which operators express the graph. Both are
written into the manifest and the bundle name. `apply_recipe` turns the fp32 graph an emitter wrote
into the recipe's graph.
"""
from __future__ import annotations

import re
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
    accuracy_level: int | None = None  # MatMulNBits: 4 = int8 activations, the fast CPU path; 0 = fp32
    quantize_lm_head: bool = True
    # Linears whose activations stay fp32 (MatMulNBits accuracy level 0) where the others take
    # `accuracy_level`: projection names, in every layer ("qkv_proj", "o_proj", "gate_up_proj", "down_proj",
    # "*" for all four) and "lm_head". Int8 activations round each block of 32 inputs to 255 steps: on exact
    # weights that alone flipped 40 of 53 everyday answers of SmolLM2-135M (docs/benchmarks.md, "Everyday
    # questions"), at near-ties where fp32 itself is barely decided.
    fp32_activations: tuple[str, ...] = ()
    fp32_last_layers: int = 0  # also all four projections of the last K layers
    # The head's k largest logits recomputed from fp32 activations (exporters/graph/linear.py `exact_top`): what
    # greedy and top-k sampling choose among, without an 8-bit fp32-activation kernel (~100x slower here).
    exact_top_k: int = 0
    # From a quantized GGUF, keep the file's own blocks wherever they have an exact int4/int8 form.
    source_blocks: bool = False
    # Validation bounds: fp32 must match transformers almost exactly; quantized recipes are held
    # to greedy agreement and a perplexity bound instead (see exporters/validate.py).
    logits_atol: float | None = None
    # Perplexity on the built-in eval text may exceed transformers fp32 by at most this fraction.
    max_ppl_increase: float = 0.05
    bytes_per_weight: float = 4.0  # for the memory-fit estimate

    def manifest(self) -> dict:
        """The manifest's `quantization` section for this recipe."""
        return {"recipe": self.name, "description": self.description, "bits": self.bits, "block_size": self.block_size,
                "symmetric": self.symmetric, "accuracy_level": self.accuracy_level, "method": self.method,
                "lm_head_quantized": self.bits is not None and self.quantize_lm_head,
                **({"fp32_activations": list(self.fp32_activations)} if self.fp32_activations else {}),
                **({"fp32_last_layers": self.fp32_last_layers} if self.fp32_last_layers else {}),
                **({"exact_top_k": self.exact_top_k} if self.exact_top_k else {})}


_INT4_B32 = dict(bits=4, block_size=32, symmetric=False, accuracy_level=4, bytes_per_weight=0.625, source_blocks=True)
_LAYOUT = ("int4 blocks of 32 with a float offset per block (Q4_1 layout), lm_head int8 (Q8_0 layout), embedding read "
           "from the int8 head when tied (else fp16); from a quantized GGUF, the file's own blocks wherever exact")


def _int4_b32_mixes() -> tuple[Recipe, ...]:
    """int4-b32's weights with some activations fp32 instead of int8: the default and the mixes measured for it."""
    top = "the head's top 8 logits recomputed from fp32 activations"

    def mix(name: str, what: str, **kw) -> Recipe:
        return Recipe(name, f"{_LAYOUT}; {what}", ("fused",), **_INT4_B32, **kw)

    return (
        mix("int4-b32-a32", f"fp32 activations in every layer (accuracy level 0), int8 in the head with {top}",
            fp32_activations=("*",), exact_top_k=8),
        mix("int4-b32-acc0", "fp32 activations everywhere (accuracy level 0), the head included: slow, onnxruntime "
            "has no fast 8-bit kernel for fp32 activations", fp32_activations=("*", "lm_head")),
        mix("int4-b32-a32-head", "fp32 activations in the head only (accuracy level 0; slow, as in int4-b32-acc0), "
            "int8 activations elsewhere", fp32_activations=("lm_head",)),
        mix("int4-b32-xhead", f"int8 activations (accuracy level 4) everywhere, {top}", exact_top_k=8),
        mix("int4-b32-a32-down", f"fp32 activations in every down_proj, int8 elsewhere, {top}",
            fp32_activations=("down_proj",), exact_top_k=8),
        mix("int4-b32-a32-attn", f"fp32 activations in the attention projections (qkv, o), int8 elsewhere, {top}",
            fp32_activations=("qkv_proj", "o_proj"), exact_top_k=8),
        mix("int4-b32-a32-mlp", f"fp32 activations in the MLP projections (gate/up, down), int8 elsewhere, {top}",
            fp32_activations=("gate_up_proj", "down_proj"), exact_top_k=8),
        mix("int4-b32-a32-last8", f"fp32 activations in the last 8 layers, int8 elsewhere, {top}",
            fp32_last_layers=8, exact_top_k=8),
    )


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
               bits=4, block_size=32, symmetric=False, accuracy_level=4, bytes_per_weight=0.625, source_blocks=True),
        # The CPU default is int4-b32-a32: int4-b32's weights with the activations of every layer kept fp32, and
        # the head's top 8 logits recomputed from fp32 activations. Each half alone left most everyday answers
        # different from fp32 (35/53 and 16/53 identical, int4-b32 13/53); together 53/53 (docs/benchmarks.md).
        *_int4_b32_mixes(),
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


PROJECTIONS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")  # the linears of a layer (exporters/graph/decoder.py)
_LAYER_LINEAR = re.compile(r"model\.layers\.(\d+)\.\w+\.(\w+)$")


def accuracy_level(recipe: Recipe, name: str, num_layers: int) -> int:
    """MatMulNBits accuracy level of the linear `name` ("model.layers.{i}.attn.qkv_proj", "lm_head", ...)."""
    if name == "lm_head":
        return 0 if "lm_head" in recipe.fp32_activations else recipe.accuracy_level
    m = _LAYER_LINEAR.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a linear the recipes know (a layer projection or lm_head)")
    layer, proj = int(m.group(1)), m.group(2)
    fp32 = (proj in recipe.fp32_activations or "*" in recipe.fp32_activations
            or (recipe.fp32_last_layers > 0 and layer >= num_layers - recipe.fp32_last_layers))
    return 0 if fp32 else recipe.accuracy_level


def emitter_options(recipe: Recipe, num_layers: int | None = None) -> dict:
    """Keyword arguments for `emit_decoder` that write the recipe's weight formats directly.

    num_layers: the model's layer count, needed by a recipe that treats its last layers apart."""
    import numpy as np

    from .graph import linear as L

    if recipe.method != "emit" or recipe.name == "fp32":
        return {}
    if recipe.fp32_last_layers and num_layers is None:
        raise ValueError(f"recipe {recipe.name!r} treats the last {recipe.fp32_last_layers} layers apart: "
                         "pass num_layers")
    blocks = L.at_level(lambda name: accuracy_level(recipe, name, num_layers or 0),
                        lambda name: recipe.exact_top_k if name == "lm_head" else 0)
    common = {"embed_dtype": np.float16, "tied_embed": L.make_int8_gather(recipe.block_size), "blocks_linear": blocks}
    if recipe.bits == 4:
        body = L.make_int4_offset(recipe.block_size, blocks_linear=blocks)
        head = L.make_int8_sym(recipe.block_size, blocks_linear=blocks)
        return {"linear": L.by_name(body, lm_head=head), **common}
    if recipe.bits == 8:
        return {"linear": L.make_int8_sym(recipe.block_size, blocks_linear=blocks), **common}
    raise ValueError(f"recipe {recipe.name!r} has no emitter format")
