"""Gemma 3 (text; 270M, 1B, and the text tower of the larger ones): the Llama block with

- embeddings scaled by sqrt(hidden_size);
- RMSNorm scaled by (1 + weight), four per layer: before and after attention, before and after the MLP
  (the "after" ones normalise the sub-block's output before the residual add);
- q/k RMSNorm per head before RoPE (as Qwen3) and softmax scale query_pre_attn_scalar ** -0.5;
- a GeGLU MLP (tanh GELU; the config key is `hidden_activation`, and its absence means GELU, not SiLU);
- sliding-window layers (5 of every 6) with their own RoPE base; global layers with the global base and
  the model's RoPE scaling (linear, factor 8, on 4B and up).

GGUF calls it `gemma3`. Everything here is config data read into DecoderArgs fields; the emitters have no
Gemma branch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edge_sdk.errors import UnsupportedModelError

from .base import LLAMA_WEIGHTS, DecoderArgs

WEIGHTS = {**LLAMA_WEIGHTS, "mlp_norm": "model.layers.{i}.pre_feedforward_layernorm.weight"}


@dataclass
class ModelArgs(DecoderArgs):
    model_type: ClassVar[str] = "gemma3_text"
    weights: ClassVar[dict[str, str]] = WEIGHTS
    qk_norm: bool = True
    norm_offset: float = 1.0
    sandwich_norms: bool = True
    hidden_act: str = "gelu_pytorch_tanh"
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embed_scale is None:
            self.embed_scale = float(self.hidden_size) ** 0.5

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelArgs":
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if config.get(key) is not None:
                raise UnsupportedModelError(f"gemma3_text with {key}={config[key]} is not supported (Gemma 3 has none)")
        if config.get("use_bidirectional_attention"):
            raise UnsupportedModelError("gemma3_text with use_bidirectional_attention (an encoder) is not a decoder")
        cfg = {k: v for k, v in config.items() if k not in ("hidden_act", "rope_scaling", "rope_parameters")}
        # The MLP activation is `hidden_activation`; transformers' Gemma3TextConfig defaults it to tanh GELU.
        cfg["hidden_act"] = config.get("hidden_activation") or "gelu_pytorch_tanh"
        n = int(config["num_hidden_layers"])
        if config.get("layer_types") is None:  # older configs: every `sliding_window_pattern`-th layer is global
            pattern = int(config.get("sliding_window_pattern") or config.get("_sliding_window_pattern") or 6)
            cfg["layer_types"] = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n)]
        rope = config.get("rope_parameters") or {}
        if "full_attention" in rope:  # transformers >= 5: RoPE per layer type
            full, local = rope["full_attention"], rope.get("sliding_attention") or {}
            cfg["rope_theta"] = full.get("rope_theta", 1_000_000.0)
            cfg["rope_local_theta"] = local.get("rope_theta", 10_000.0)
            if (local.get("rope_type") or "default") != "default":
                raise UnsupportedModelError(f"gemma3_text: scaled RoPE on sliding layers ({local}) is not supported")
            if (full.get("rope_type") or "default") != "default":
                cfg["rope_scaling"] = full
        else:
            cfg.setdefault("rope_theta", 1_000_000.0)
            cfg["rope_local_theta"] = float(config.get("rope_local_base_freq", 10_000.0))
            cfg["rope_scaling"] = config.get("rope_scaling")
        cfg["attention_scale"] = float(config.get("query_pre_attn_scalar", 256)) ** -0.5
        return super().from_config(cfg)


def fake() -> ModelArgs:
    """A tiny random-weight config for tests: 4 layers (3 sliding with a window of 8, then 1 global, as Gemma 3
    interleaves 5 and 1), GQA, head_dim 32 != 64 / 4 heads, tied head."""
    return ModelArgs(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=1_000_000.0, rope_local_theta=10_000.0, sliding_window=8,
        layer_types=["sliding_attention"] * 3 + ["full_attention"], attention_scale=24.0 ** -0.5,
    )


def hf_config(args: ModelArgs) -> dict[str, Any]:
    """The transformers config.json of `args` (tests build random models from fake())."""
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "sliding_window",
            "layer_types", "tie_word_embeddings")
    full = {"rope_type": "default", "rope_theta": args.rope_theta, **(args.rope_scaling or {})}
    return {"model_type": "gemma3_text", **{k: getattr(args, k) for k in keys},
            "hidden_activation": args.hidden_act, "query_pre_attn_scalar": round(args.attention_scale ** -2),
            "rope_parameters": {"full_attention": full,
                                "sliding_attention": {"rope_type": "default", "rope_theta": args.rope_local_theta}}}
