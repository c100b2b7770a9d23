"""The ONNX graph of a BERT encoder: token ids and mask in, one vector per token out.

    input_ids       int64 [batch, seq]
    attention_mask  int64 [batch, seq]   1 = token, 0 = padding
    last_hidden_state float32 [batch, seq, hidden]

Pooling and normalisation stay outside the graph (runtime/embed/pooling.py): they are a few numpy
lines, the manifest names them, and the same graph then serves any pooling.

Operators: onnxruntime's contrib MultiHeadAttention (padding as a key mask, no [B, N, S, S] bias
tensor built by hand), SkipLayerNormalization (residual + post-norm in one kernel) and BiasGelu;
the linear layers in the recipe's format (exporters/graph/linear.py). Token type ids are always 0
for one sentence, so that row is folded into the position table.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from ..graph import linear as L
from ..graph.builder import MS_DOMAIN, GraphBuilder
from .architecture import EncoderArgs

INPUTS = ["input_ids", "attention_mask"]
OUTPUTS = ["last_hidden_state"]


def emit_encoder(args: EncoderArgs, weights: dict[str, np.ndarray], *, linear: L.Linear = L.fp32,
                 gather: L.Gather | None = None, embed_dtype=np.float32) -> onnx.ModelProto:
    """The encoder graph; `linear` writes each projection in the recipe's format, `gather` (if given)
    reads the word table in that format too (the int8 recipe keeps it as Q8_0 blocks)."""
    b = GraphBuilder("encoder")
    w = lambda name, i=None: weights[args.weight_name(name, i)]  # noqa: E731
    eps = float(args.layer_norm_eps)
    ids = b.input("input_ids", np.int64, ["batch", "seq"])
    mask = b.input("attention_mask", np.int64, ["batch", "seq"])
    b.output("last_hidden_state", np.float32, ["batch", "seq", args.hidden_size])

    # Embeddings: word rows + (position row + token type 0 row), then LayerNorm.
    b.prefix = "embeddings/"
    if gather is not None:
        words = gather(b, ids, w("word"), "embeddings.word")
    else:
        table = b.weight("embeddings.word.weight", w("word").astype(embed_dtype))
        words = b.op("Gather", [table, ids])
        if embed_dtype != np.float32:
            words = b.op("Cast", [words], to=onnx.TensorProto.FLOAT)
    positions = b.weight("embeddings.position_plus_type0", (w("position") + w("token_type")[0]).astype(np.float32))
    seq = b.op("Slice", [b.op("Shape", [ids]), b.const([1]), b.const([2])])
    pos = b.op("Slice", [positions, b.const([0]), seq, b.const([0])])  # [seq, hidden]
    x = b.op("LayerNormalization", [b.op("Add", [words, pos]), b.weight("embeddings.norm.weight", w("embed_norm")),
                                    b.weight("embeddings.norm.bias", w("embed_norm_bias"))], axis=-1, epsilon=eps)
    key_mask = b.op("Cast", [mask], to=onnx.TensorProto.INT32)  # MultiHeadAttention's key_padding_mask [B, S]

    h = args.hidden_size
    for i in range(args.num_hidden_layers):
        b.prefix = f"layer{i}/"
        name = f"layer.{i}"
        qkv_w = np.concatenate([w("q", i), w("k", i), w("v", i)], axis=0)  # [3h, h]: one matmul for q, k, v
        qkv_b = np.concatenate([w("q_bias", i), w("k_bias", i), w("v_bias", i)])
        qkv = b.op("Add", [linear(b, x, qkv_w, f"{name}.attn.qkv"), b.weight(f"{name}.attn.qkv.bias", qkv_b)])
        q, k, v = b.op("Split", [qkv, b.const([h, h, h])], n_out=3, axis=-1)
        ctx = b.op("MultiHeadAttention", [q, k, v, "", key_mask], domain=MS_DOMAIN,
                   num_heads=args.num_attention_heads)
        attn = linear(b, ctx, w("o", i), f"{name}.attn.o")
        x = b.op("SkipLayerNormalization", [attn, x, b.weight(f"{name}.attn_norm.weight", w("attn_norm", i)),
                                            b.weight(f"{name}.attn_norm.bias", w("attn_norm_bias", i)),
                                            b.weight(f"{name}.attn.o.bias", w("o_bias", i))],
                 domain=MS_DOMAIN, epsilon=eps)
        up = b.op("BiasGelu", [linear(b, x, w("up", i), f"{name}.mlp.up"), b.weight(f"{name}.mlp.up.bias", w("up_bias", i))],
                  domain=MS_DOMAIN)
        down = linear(b, up, w("down", i), f"{name}.mlp.down")
        x = b.op("SkipLayerNormalization", [down, x, b.weight(f"{name}.mlp_norm.weight", w("mlp_norm", i)),
                                            b.weight(f"{name}.mlp_norm.bias", w("mlp_norm_bias", i)),
                                            b.weight(f"{name}.mlp.down.bias", w("down_bias", i))],
                 domain=MS_DOMAIN, epsilon=eps)
    b.prefix = ""
    b.op("Identity", [x], outputs=["last_hidden_state"])
    return b.model({"edge_sdk.kind": "embedder", "edge_sdk.model_type": args.model_type})


def recipe_options(recipe) -> dict[str, Callable | type]:
    """Emitter keyword arguments for a recipe: fp32 as is; int8 = Q8_0 blocks for every matrix, the word
    table included (read by GatherBlockQuantized); int4 = Q4_1-layout blocks for the layers."""
    if recipe.name == "fp32":
        return {}
    if recipe.bits == 8:
        return {"linear": L.make_int8_sym(recipe.block_size, recipe.accuracy_level),
                "gather": L.make_int8_gather(recipe.block_size)}
    if recipe.bits == 4 and recipe.method == "emit":
        return {"linear": L.make_int4_offset(recipe.block_size, recipe.accuracy_level),
                "gather": L.make_int8_gather(recipe.block_size)}
    from edge_sdk.errors import UnsupportedModelError

    raise UnsupportedModelError(f"recipe {recipe.name!r} is not available for embedders; use fp32, int8 or int4-b32")
