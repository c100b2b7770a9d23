"""Apply a quantization recipe to an fp32 graph written by an emitter.

Weight-only block quantization uses onnxruntime's own MatMulNBits quantizer: every MatMul with a
constant weight becomes a MatMulNBits node (int4 or int8 blocks + scales). With accuracy level 4
onnxruntime quantizes activations to int8 on the fly inside the kernel - the fast CPU path.
The tied lm_head is a MatMul like the others and is quantized too unless the recipe says not to.
"""
from __future__ import annotations

import logging

import onnx

from .recipes import Recipe


def apply_recipe(model: onnx.ModelProto, recipe: Recipe) -> onnx.ModelProto:
    if recipe.method != "ort-nbits":
        return model  # fp32, or weights the emitter already wrote in the recipe's format
    if recipe.bits in (4, 8):
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer)

        exclude = [] if recipe.quantize_lm_head else [n.name for n in model.graph.node if "logits" in n.output]
        config = DefaultWeightOnlyQuantConfig(block_size=recipe.block_size, is_symmetric=recipe.symmetric,
                                              accuracy_level=recipe.accuracy_level, bits=recipe.bits)
        logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
        quantizer = MatMulNBitsQuantizer(model, bits=recipe.bits, block_size=recipe.block_size,
                                         is_symmetric=recipe.symmetric, accuracy_level=recipe.accuracy_level,
                                         nodes_to_exclude=exclude, algo_config=config)
        quantizer.process()
        return quantizer.model.model
    raise ValueError(f"recipe {recipe.name!r} is not applicable to the fused flavour")
