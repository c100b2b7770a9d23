"""Emit a decoder ONNX graph from an architecture description and its weights.

The layer loop is written once (`emit_decoder`); *how* each block is expressed is a flavour:
- `fused` (`FusedOps`): onnxruntime contrib ops - GroupQueryAttention with rotary inside,
  SkipSimplifiedLayerNormalization, packed QKV and gate/up projections. Fastest on CPU; the KV cache
  can be a preallocated buffer shared between `past_*` and `present_*` (see runtime/kv_cache.py).
- `static` (exporters/graph/static.py): standard ONNX ops and fixed shapes for NPUs.

Weight formats are not the emitter's business either: every matrix goes through `ops.linear`, whose
implementation the recipe picks (exporters/graph/linear.py); recipes built on onnxruntime's own
quantizer rewrite the fp32 graph afterwards (exporters/quantize.py).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import onnx

from edge_sdk.exporters.architectures import DecoderArgs

from onnx import TensorProto

from .builder import MS_DOMAIN, GraphBuilder
from .io import kv_names
from .linear import BlockLinear, Gather, Linear, from_blocks
from .linear import fp32 as linear_fp32


def rope_inv_freq(args: DecoderArgs, local: bool = False) -> np.ndarray:
    """The rotary frequencies [head_dim/2], with the model's RoPE scaling, as transformers computes them.
    `local`: those of sliding-window layers (their own base, never scaled)."""
    d = args.rotary_dim
    theta = args.rope_local_theta if local and args.rope_local_theta is not None else args.rope_theta
    wavelength_base = theta ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d)
    inv_freq = 1.0 / wavelength_base
    if local:
        return inv_freq
    if args.rope_type == "longrope":  # within the pretraining context (check_context): the short factors
        inv_freq = (1.0 / (np.asarray(args.rope_scaling["short_factor"], np.float32) * wavelength_base)).astype(np.float32)
    if args.rope_type == "linear":  # positions divided by `factor`
        inv_freq = (inv_freq / np.float32(args.rope_scaling["factor"])).astype(np.float32)
    if args.rope_type == "llama3":  # Llama 3.1/3.2: long wavelengths slowed by `factor`, a smooth band between
        r = args.rope_scaling
        factor, low, high = float(r["factor"]), float(r["low_freq_factor"]), float(r["high_freq_factor"])
        old = float(r["original_max_position_embeddings"])
        wavelen = 2 * np.pi / inv_freq
        scaled = np.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        inv_freq = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv_freq


def rope_cache(args: DecoderArgs, max_len: int, local: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin tables [max_len, rotary_dim/2] for non-interleaved (rotate_half) RoPE, as HF computes them."""
    args.check_context(max_len)
    inv_freq = rope_inv_freq(args, local)
    freqs = np.outer(np.arange(max_len, dtype=np.float32), inv_freq)  # [max_len, d/2]
    scale = np.float32(rope_attention_factor(args)) if not local else np.float32(1.0)
    return (np.cos(freqs) * scale).astype(np.float32), (np.sin(freqs) * scale).astype(np.float32)


def rope_attention_factor(args: DecoderArgs) -> float:
    """longrope scales cos and sin by sqrt(1 + ln(factor) / ln(original context)) (transformers' default)."""
    if args.rope_type != "longrope":
        return 1.0
    import math

    r, original = args.rope_scaling, args.longrope_original
    if r.get("attention_factor") is not None:
        return float(r["attention_factor"])
    factor = r.get("factor") or args.max_position_embeddings / original
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))


class DecoderOps:
    """Blocks shared by every flavour; subclasses provide inputs, attention and norms."""

    flavour = ""

    def __init__(self, args: DecoderArgs, weights: Mapping[str, np.ndarray], max_context: int,
                 linear: Linear = linear_fp32, embed_dtype=np.float32, tied_embed: Gather | None = None,
                 lora_slots: bool = False, source_blocks: Mapping | None = None,
                 blocks_linear: BlockLinear | None = None, weights_file=None):
        self.args = args
        self.w = weights
        self.max_context = max_context
        self.b = GraphBuilder(weights_file=weights_file)  # a file: each weight is written out as it is made
        self._linear = linear  # how weights are stored: chosen by the recipe
        self.embed_dtype = np.dtype(embed_dtype)
        self._tied_embed = tied_embed  # tied weights: read the rows from the head's quantized table
        # Run-time adapters (runtime/lora): every packed layer linear adds x @ A @ B, A and B graph inputs.
        self.lora_slots = lora_slots
        # A quantized source's own blocks by HF weight name (exporters/gguf): used as they are, exactly,
        # wherever every packed part has them; the recipe's `linear` writes the rest.
        self.source_blocks = source_blocks or {}
        # How those blocks are written (accuracy level per linear, the head's exact top-k): the recipe's choice.
        self._blocks_linear = blocks_linear or from_blocks

    # -- weights ----------------------------------------------------------------------------------
    def tensor(self, logical: str, layer: int | None = None) -> np.ndarray:
        return np.asarray(self.w[self.args.weight_name(logical, layer)], dtype=np.float32)

    def norm_weight(self, logical: str, layer: int | None = None, scale: float = 1.0) -> str:
        """An RMSNorm scale as an initializer: (norm_offset + w) * scale (Gemma stores w - 1)."""
        w = (self.tensor(logical, layer) + np.float32(self.args.norm_offset)) * np.float32(scale)
        name = self.args.weight_name(logical, layer)
        return self.b.weight(name if scale == 1.0 else f"{name}.scaled", w.astype(np.float32))

    def linear(self, x: str, name: str, *logicals: str, layer: int | None = None) -> str:
        """x @ W^T for HF Linear weights [out, in]; several weights are packed along `out` (one kernel)."""
        blocks = self._source(logicals, layer)
        if blocks is not None:
            y = self._blocks_linear(self.b, x, blocks, name)
            shape = blocks.shape
        else:
            w = np.concatenate([self.tensor(lg, layer) for lg in logicals], axis=0)
            y, shape = self._linear(self.b, x, w, name), w.shape
        if not self.lora_slots or layer is None:
            return y
        from edge_sdk.runtime.lora import SLOTS, input_name

        slot = next(s for s, packed in SLOTS.items() if packed == logicals)
        rank = f"lora_rank_{layer}_{slot}"  # each input its own symbolic rank: adapters differ per slot
        a = self.b.input(input_name(layer, slot, "a"), np.float32, [shape[1], rank])
        b = self.b.input(input_name(layer, slot, "b"), np.float32, [rank, shape[0]])
        # Rank 0 (no adapter) makes x @ A @ B an exact zero: the base model's output, unchanged.
        return self.b.op("Add", [y, self.b.op("MatMul", [self.b.op("MatMul", [x, a]), b])])

    def _source(self, logicals: tuple[str, ...], layer: int | None):
        """The source's blocks for these packed weights, or None if any part has none."""
        names = [self.args.weight_name(lg, layer) for lg in logicals]
        if not all(n in self.source_blocks for n in names):
            return None
        from edge_sdk.exporters.gguf.blocks import concat_rows

        return concat_rows([self.source_blocks[n] for n in names])

    # Plain fp32 MatMul helpers (the static flavour quantizes to QDQ afterwards, so it writes fp32).
    def linear_weight(self, name: str, *logicals: str, layer: int | None = None) -> str:
        mats = [self.tensor(lg, layer) for lg in logicals]
        return self.b.weight(name, np.concatenate(mats, axis=0).T)

    def matmul(self, x: str, w: str) -> str:
        return self.b.op("MatMul", [x, w])

    # -- blocks -----------------------------------------------------------------------------------
    def embed(self, input_ids: str) -> str:
        blocks = self._source(("embed",), None)
        if blocks is not None:  # tied: the head reads the same initializers under "lm_head"
            from .linear import gather_blocks

            return gather_blocks(self.b, input_ids, blocks, "lm_head" if self.args.tie_word_embeddings else "embed")
        if self._tied_embed is not None and self.args.tie_word_embeddings:
            return self._tied_embed(self.b, input_ids, self.tensor("embed"), "lm_head")
        table = self.b.weight("model.embed_tokens.weight", self.tensor("embed").astype(self.embed_dtype))
        rows = self.b.op("Gather", [table, input_ids])  # [B, S, H]
        # fp16 table (quantized recipes): half the memory; only the looked-up rows are widened.
        return rows if self.embed_dtype == np.float32 else self.b.op("Cast", [rows], to=TensorProto.FLOAT)

    def mlp(self, x: str, i: int) -> str:
        a = self.args
        gate_up = self.linear(x, f"model.layers.{i}.mlp.gate_up_proj", "gate", "up", layer=i)
        gate, up = self.b.op("Split", [gate_up, self.b.const([a.intermediate_size, a.intermediate_size])], n_out=2, axis=-1)
        if a.hidden_act == "gelu_pytorch_tanh":
            act = self.gelu_tanh(gate)
        else:
            act = self.b.op("Mul", [gate, self.b.op("Sigmoid", [gate])])  # SiLU
        return self.linear(self.b.op("Mul", [act, up]), f"model.layers.{i}.mlp.down_proj", "down", layer=i)

    def gelu_tanh(self, x: str) -> str:
        return self.b.op("Gelu", [x], approximate="tanh")  # ONNX opset 20

    logits_to_keep: str | None = None  # input name: run the head on the last k positions only

    def lm_head(self, x: str) -> str:
        if self.logits_to_keep:  # prefill for generation needs one row of logits, not S x vocab
            neg_k = self.b.op("Neg", [self.logits_to_keep])
            x = self.b.op("Slice", [x, neg_k, self.b.const([2**62]), self.b.const([1])])
        logits = self.linear(x, "lm_head", "embed" if self.args.tie_word_embeddings else "lm_head")
        return self.b.op("Identity", [logits], outputs=["logits"])

    # -- flavour hooks ----------------------------------------------------------------------------
    def declare_io(self) -> str:  # returns the input_ids name
        raise NotImplementedError

    def norm(self, x: str, residual: str | None, weight: str) -> tuple[str, str]:
        """RMSNorm(x + residual) -> (normalised, new residual)."""
        raise NotImplementedError

    def attention(self, x: str, i: int) -> str:
        raise NotImplementedError


class FusedOps(DecoderOps):
    """CPU flavour over onnxruntime contrib ops.

    Inputs:  input_ids int64 [1, S]; seqlens_k int32 [1] (= tokens in cache after this step - 1);
             total_sequence_length int32 [] (= seqlens_k + 1); num_logits_to_keep int64 [1] (k: logits
             for the last k positions); past_key_values.{i}.key|value float32 [1, kv_heads, P, head_dim].
    Outputs: logits float32 [1, k, vocab]; present.{i}.key|value float32 [1, kv_heads, T, head_dim].
    Bound to a max-context buffer for both past and present, GQA writes the new entries in place
    (P = T = capacity); bound to a P-long past it returns a T = P + S present (concat mode).
    """

    flavour = "fused"

    def declare_io(self) -> str:
        a, b = self.args, self.b
        ids = b.input("input_ids", np.int64, [1, "sequence_length"])
        b.input("seqlens_k", np.int32, [1])
        b.input("total_sequence_length", np.int32, [])
        self.logits_to_keep = b.input("num_logits_to_keep", np.int64, [1])
        for i in range(a.num_hidden_layers):
            for kind, name in kv_names(i, "past").items():
                b.input(name, np.float32, [1, a.num_key_value_heads, "past_sequence_length", a.head_dim])
        b.output("logits", np.float32, [1, "logits_length", a.vocab_size])
        for i in range(a.num_hidden_layers):
            for kind, name in kv_names(i, "present").items():
                b.output(name, np.float32, [1, a.num_key_value_heads, "total_sequence_length", a.head_dim])
        if a.rotary_dim < a.head_dim and (a.rotary_dim // 2) % 8:
            from edge_sdk.errors import UnsupportedModelError

            raise UnsupportedModelError(f"{a.model_type}: onnxruntime's GroupQueryAttention rotates part of a head only "
                                        f"in multiples of 16 dimensions; this model rotates {a.rotary_dim} of {a.head_dim}")
        cos, sin = rope_cache(a, self.max_context)
        self.cos, self.sin = b.weight("rope.cos_cache", cos), b.weight("rope.sin_cache", sin)
        if a.has_sliding_layers:
            cos, sin = rope_cache(a, self.max_context, local=True)
            self.local_cos, self.local_sin = b.weight("rope.local_cos_cache", cos), b.weight("rope.local_sin_cache", sin)
        return ids

    def norm(self, x, residual, weight):
        eps = float(self.args.rms_norm_eps)
        if residual is None:
            return self.b.op("SimplifiedLayerNormalization", [x, weight], axis=-1, epsilon=eps, stash_type=1), x
        out, _, _, summed = self.b.op("SkipSimplifiedLayerNormalization", [x, residual, weight], n_out=4,
                                      domain=MS_DOMAIN, epsilon=eps)
        return out, summed

    def qk_norm(self, qkv: str, i: int) -> str:
        """Qwen3's per-head RMSNorm of q and k, on the packed [1, S, q + 2 kv] before GroupQueryAttention
        applies RoPE: split, norm over head_dim, pack again."""
        a, b = self.args, self.b
        eps = float(a.rms_norm_eps)
        q, k, v = b.op("Split", [qkv, b.const([a.q_dim, a.kv_dim, a.kv_dim])], n_out=3, axis=-1)
        out = []
        for x, heads, logical in ((q, a.num_attention_heads, "q_norm"), (k, a.num_key_value_heads, "k_norm")):
            x = b.op("Reshape", [x, b.const([0, 0, heads, a.head_dim])])
            x = b.op("SimplifiedLayerNormalization", [x, self.norm_weight(logical, i)], axis=-1, epsilon=eps, stash_type=1)
            out.append(b.op("Reshape", [x, b.const([0, 0, heads * a.head_dim])]))
        return b.op("Concat", [*out, v], axis=-1)

    def attention(self, x, i):
        a, b = self.args, self.b
        qkv = self.linear(x, f"model.layers.{i}.attn.qkv_proj", "q", "k", "v", layer=i)
        if a.attention_bias:
            bias = np.concatenate([self.tensor(n, i) for n in ("q_bias", "k_bias", "v_bias")])
            qkv = b.op("Add", [qkv, b.weight(f"model.layers.{i}.attn.qkv_proj.bias", bias)])
        if a.qk_norm:
            qkv = self.qk_norm(qkv, i)
        past, present = kv_names(i, "past"), kv_names(i, "present")
        sliding = a.is_sliding(i)
        cos, sin = (self.local_cos, self.local_sin) if sliding else (self.cos, self.sin)
        # Both count the query itself: a window of W sees positions p-W+1..p (checked by the parity test).
        window = {"local_window_size": a.sliding_window} if sliding else {}
        attn, _, _ = b.op(
            "GroupQueryAttention",
            [qkv, "", "", past["key"], past["value"], "seqlens_k", "total_sequence_length", cos, sin],
            outputs=[b._name("gqa") + "/out", present["key"], present["value"]],
            domain=MS_DOMAIN, num_heads=a.num_attention_heads, kv_num_heads=a.num_key_value_heads,
            do_rotary=1, rotary_interleaved=0, scale=a.softmax_scale, **window,
        )
        return self.linear(attn, f"model.layers.{i}.attn.o_proj", "o", layer=i)


FLAVOURS: dict[str, Callable[..., DecoderOps]] = {"fused": FusedOps}


def emit_decoder(args: DecoderArgs, weights: Mapping[str, np.ndarray], flavour: str = "fused",
                 max_context: int | None = None, progress=None, linear: Linear = linear_fp32,
                 embed_dtype=np.float32, **flavour_options) -> onnx.ModelProto:
    """Build the whole decoder graph for `flavour`; `linear` writes the weight matrices (fp32 MatMul by default).

    `flavour_options` go to the flavour's constructor (the static flavour takes `seq_len`; `weights_file`
    streams the weights to that file as they are made, see graph/builder.py)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; known: {', '.join(FLAVOURS)}")
    weights = args.prepare_weights(dict(weights))
    ops = FLAVOURS[flavour](args, weights, max_context or args.max_position_embeddings, linear=linear,
                            embed_dtype=embed_dtype, **flavour_options)  # e.g. seq_len for the static flavour
    b = ops.b
    h = ops.embed(ops.declare_io())
    if args.embed_scale is not None:
        h = b.op("Mul", [h, b.const(args.embed_scale, np.float32)])
    residual = None
    layers = range(args.num_hidden_layers)
    if progress is not None:
        layers = progress.bar(layers, args.num_hidden_layers, "emit layers")
    for i in layers:
        b.prefix = f"layers.{i}/"
        n, residual = ops.norm(h, residual, ops.norm_weight("attn_norm", i))
        h = ops.attention(n, i)
        if args.sandwich_norms:
            h, _ = ops.norm(h, None, ops.norm_weight("attn_post_norm", i))
        n, residual = ops.norm(h, residual, ops.norm_weight("mlp_norm", i))
        h = ops.mlp(n, i)
        if args.sandwich_norms:
            h, _ = ops.norm(h, None, ops.norm_weight("mlp_post_norm", i))
    b.prefix = "final/"
    n, _ = ops.norm(h, residual, ops.norm_weight("final_norm"))
    ops.lm_head(n)
    return b.model({"edge_sdk.flavour": ops.flavour, "edge_sdk.model_type": args.model_type})
