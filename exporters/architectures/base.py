"""The architecture description every graph emitter reads.

A decoder-only transformer of the Llama family is fully described by a handful of numbers and a
weight-name map. Each supported ``model_type`` gets its own small module that subclasses
:class:`DecoderArgs` (fields named as in the HF ``config.json``), declares its weight names and
provides a ``fake()`` tiny config for tests. Emitters never branch on the architecture name; they
read these fields.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from edge_sdk.errors import UnsupportedModelError

# Logical tensor names used by the emitters -> HF state-dict names. `{i}` is the layer index.
LLAMA_WEIGHTS: dict[str, str] = {
    "embed": "model.embed_tokens.weight",
    "final_norm": "model.norm.weight",
    "lm_head": "lm_head.weight",
    "attn_norm": "model.layers.{i}.input_layernorm.weight",
    "mlp_norm": "model.layers.{i}.post_attention_layernorm.weight",
    "q": "model.layers.{i}.self_attn.q_proj.weight",
    "k": "model.layers.{i}.self_attn.k_proj.weight",
    "v": "model.layers.{i}.self_attn.v_proj.weight",
    "o": "model.layers.{i}.self_attn.o_proj.weight",
    "gate": "model.layers.{i}.mlp.gate_proj.weight",
    "up": "model.layers.{i}.mlp.up_proj.weight",
    "down": "model.layers.{i}.mlp.down_proj.weight",
    # Present only when `qk_norm` is true (Qwen3): RMSNorm of each head's q and k before RoPE.
    "q_norm": "model.layers.{i}.self_attn.q_norm.weight",
    "k_norm": "model.layers.{i}.self_attn.k_norm.weight",
    # Present only when `sandwich_norms` is true (Gemma 3): RMSNorm of each sub-block's output, before the
    # residual add. (Gemma's pre-MLP norm is `pre_feedforward_layernorm`; see gemma3_text.py.)
    "attn_post_norm": "model.layers.{i}.post_attention_layernorm.weight",
    "mlp_post_norm": "model.layers.{i}.post_feedforward_layernorm.weight",
    # Present only when `attention_bias` is true (Qwen2).
    "q_bias": "model.layers.{i}.self_attn.q_proj.bias",
    "k_bias": "model.layers.{i}.self_attn.k_proj.bias",
    "v_bias": "model.layers.{i}.self_attn.v_proj.bias",
}


# RoPE variants the graph emitters compute (exporters/graph/decoder.py: rope_cache).
ROPE_TYPES = ("default", "llama3", "linear", "longrope")
# MLP activations (gate): SwiGLU, and GeGLU with the tanh approximation (Gemma).
ACTIVATIONS = ("silu", "gelu_pytorch_tanh")
LAYER_TYPES = ("full_attention", "sliding_attention")


@dataclass
class DecoderArgs:
    """Dimensions of a Llama-family decoder. Field names follow HF ``config.json``."""

    model_type: ClassVar[str] = ""
    # Logical name -> HF state-dict name; see LLAMA_WEIGHTS.
    weights: ClassVar[dict[str, str]] = LLAMA_WEIGHTS

    vocab_size: int
    hidden_size: int  # width of the residual stream
    intermediate_size: int  # width of the SwiGLU MLP
    num_hidden_layers: int
    num_attention_heads: int  # query heads
    num_key_value_heads: int  # KV heads (grouped-query attention when < query heads)
    max_position_embeddings: int = 2048  # the longest context the model was trained for
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    head_dim: int | None = None  # defaults to hidden_size // num_attention_heads
    tie_word_embeddings: bool = False  # lm_head shares the embedding matrix
    attention_bias: bool = False  # q/k/v projections carry a bias (Qwen2)
    qk_norm: bool = False  # RMSNorm over head_dim of q and k, before RoPE (Qwen3); not a config.json key
    hidden_act: str = "silu"
    rope_scaling: dict | None = None
    # The rest are not config.json keys under these names; the families that have them set them in
    # their from_config (gemma3_text.py). Defaults are the Llama block.
    norm_offset: float = 0.0  # RMSNorm scales by (norm_offset + weight): Gemma stores weight - 1
    embed_scale: float | None = None  # embeddings multiplied by this (Gemma: sqrt(hidden_size))
    sandwich_norms: bool = False  # RMSNorm after attention and after the MLP too, before each residual add
    attention_scale: float | None = None  # softmax scale; default head_dim ** -0.5
    sliding_window: int | None = None  # tokens a sliding-attention layer sees, itself included
    layer_types: list | None = None  # per layer "full_attention" | "sliding_attention"; None: all full
    rope_local_theta: float | None = None  # RoPE base of sliding layers (their RoPE is never scaled)
    partial_rotary_factor: float = 1.0  # RoPE turns the first head_dim * this dimensions of each head (Phi-4)
    original_max_position_embeddings: int | None = None  # the pretraining context, where longrope switches

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise UnsupportedModelError(
                f"{self.model_type}: num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}; grouped-query attention needs it to be."
            )
        if self.hidden_act not in ACTIVATIONS:
            raise UnsupportedModelError(
                f"{self.model_type}: hidden_act={self.hidden_act!r} is not supported (supported: {', '.join(ACTIVATIONS)})."
            )
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_hidden_layers or any(t not in LAYER_TYPES for t in self.layer_types):
                raise UnsupportedModelError(f"{self.model_type}: layer_types must give one of {', '.join(LAYER_TYPES)} "
                                            f"for each of the {self.num_hidden_layers} layers")
            if self.has_sliding_layers and not (isinstance(self.sliding_window, int) and self.sliding_window > 0):
                raise UnsupportedModelError(f"{self.model_type}: sliding-attention layers need a positive sliding_window")
        kind = self.rope_type
        if kind not in ROPE_TYPES:
            raise UnsupportedModelError(
                f"{self.model_type}: rope_scaling={self.rope_scaling} is not supported yet (supported: "
                f"{', '.join(ROPE_TYPES)}); exporting it with plain RoPE would give wrong positions, so it is refused."
            )
        if kind == "longrope":
            dim = self.rotary_dim // 2
            for key in ("short_factor", "long_factor"):
                if len(self.rope_scaling.get(key) or []) != dim:
                    raise UnsupportedModelError(f"{self.model_type}: longrope {key} must have rotary_dim / 2 = {dim} values")
            if not self.longrope_original:
                raise UnsupportedModelError(f"{self.model_type}: longrope needs original_max_position_embeddings")
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            raise UnsupportedModelError(f"{self.model_type}: partial_rotary_factor={self.partial_rotary_factor} gives "
                                        f"{self.rotary_dim} rotary dimensions of {self.head_dim}")
        if kind == "linear" and not isinstance(self.rope_scaling.get("factor"), (int, float)):
            raise UnsupportedModelError(f"{self.model_type}: linear rope_scaling lacks factor")
        if kind == "llama3":
            missing = [k for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
                       if not isinstance(self.rope_scaling.get(k), (int, float))]
            if missing:
                raise UnsupportedModelError(f"{self.model_type}: llama3 rope_scaling lacks {', '.join(missing)}")

    @property
    def rope_type(self) -> str:
        if not self.rope_scaling:
            return "default"
        kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type")) or "default"
        return "longrope" if kind == "su" else kind  # "su" is longrope's first name (Phi-3 configs of 2024)

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def longrope_original(self) -> int | None:
        r = self.rope_scaling or {}
        return r.get("original_max_position_embeddings") or self.original_max_position_embeddings

    @property
    def max_context_limit(self) -> int:
        """The longest context an export can serve exactly: the trained one, or the pretraining context where
        longrope would switch frequencies (the default context is capped there instead of refused)."""
        if self.rope_type == "longrope":
            return min(self.max_position_embeddings, self.longrope_original)
        return self.max_position_embeddings

    def check_context(self, context: int) -> None:
        """Refuse a context the exported RoPE tables cannot serve exactly (before any slow work)."""
        if self.rope_type == "longrope" and context > self.longrope_original:
            # transformers switches every position to the long factors once a sequence passes the
            # pretraining context; one fixed table cannot do both.
            raise UnsupportedModelError(
                f"{self.model_type}: longrope RoPE uses other frequencies past {self.longrope_original} tokens "
                f"(the pretraining context); export with --max-context {self.longrope_original} or less")

    def fused_weight(self, slot: str, layer: int) -> str | None:
        """The checkpoint's name of a packed linear stored as one tensor (Phi-3's qkv_proj), else None."""
        return None

    def prepare_weights(self, weights: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint's tensors under the names `weights` maps (families that store q/k/v or gate/up as
        one tensor split them here); the default has nothing to do."""
        return weights

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DecoderArgs":
        """Build from a HF ``config.json`` dict; unknown keys are dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in config.items() if k in names}
        # transformers >= 5 moves rope settings into `rope_parameters`.
        rope = config.get("rope_parameters") or {}
        if "rope_theta" not in kwargs and "rope_theta" in rope:
            kwargs["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default" and not kwargs.get("rope_scaling"):
            kwargs["rope_scaling"] = rope
        kwargs.setdefault("num_key_value_heads", config.get("num_attention_heads"))
        if kwargs.get("head_dim") is None:
            kwargs.pop("head_dim", None)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_type"] = self.model_type
        return d

    def is_sliding(self, layer: int) -> bool:
        return self.layer_types is not None and self.layer_types[layer] == "sliding_attention"

    @property
    def has_sliding_layers(self) -> bool:
        return self.layer_types is not None and "sliding_attention" in self.layer_types

    @property
    def softmax_scale(self) -> float:
        return float(self.attention_scale if self.attention_scale is not None else self.head_dim ** -0.5)

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    def weight_name(self, logical: str, layer: int | None = None) -> str:
        name = self.weights[logical]
        return name.format(i=layer) if layer is not None else name

    def expected_weights(self) -> list[str]:
        """HF names the emitters will read (lm_head omitted when tied)."""
        out = [self.weight_name("embed"), self.weight_name("final_norm")]
        if not self.tie_word_embeddings:
            out.append(self.weight_name("lm_head"))
        per_layer = ["attn_norm", "mlp_norm", "q", "k", "v", "o", "gate", "up", "down"]
        if self.attention_bias:
            per_layer += ["q_bias", "k_bias", "v_bias"]
        if self.qk_norm:
            per_layer += ["q_norm", "k_norm"]
        if self.sandwich_norms:
            per_layer += ["attn_post_norm", "mlp_post_norm"]
        for i in range(self.num_hidden_layers):
            out += [self.weight_name(n, i) for n in per_layer]
        return out

    def parameter_count(self) -> int:
        h, v, L = self.hidden_size, self.vocab_size, self.num_hidden_layers
        per_layer = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h + 3 * h * self.intermediate_size + 2 * h
        if self.attention_bias:
            per_layer += self.q_dim + 2 * self.kv_dim
        if self.qk_norm:
            per_layer += 2 * self.head_dim
        if self.sandwich_norms:
            per_layer += 2 * h
        return v * h * (1 if self.tie_word_embeddings else 2) + L * per_layer + h
