"""Qwen3: the Llama block with an RMSNorm over each head's q and k before RoPE, no q/k/v bias, and a
head_dim that need not be hidden_size / num_attention_heads (Qwen3-0.6B: 1024 / 16 heads, head_dim 128)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DecoderArgs


@dataclass
class ModelArgs(DecoderArgs):
    model_type: ClassVar[str] = "qwen3"
    qk_norm: bool = True  # always, in every Qwen3: config.json does not say so

    @classmethod
    def from_config(cls, config):
        if config.get("use_sliding_window") and config.get("sliding_window"):
            from edge_sdk.errors import UnsupportedModelError

            raise UnsupportedModelError("qwen3 with use_sliding_window is not supported yet (the released Qwen3 "
                                        "models do not use it)")
        return super().from_config({k: v for k, v in config.items() if k != "qk_norm"})


def fake() -> ModelArgs:
    """A tiny random-weight config for tests: 2 layers, GQA, head_dim 32 != 64 / 4 heads, tied head."""
    return ModelArgs(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
    )
