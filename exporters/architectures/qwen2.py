"""Qwen2 / Qwen2.5: the Llama block plus a bias on the q/k/v projections."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DecoderArgs


@dataclass
class ModelArgs(DecoderArgs):
    model_type: ClassVar[str] = "qwen2"
    attention_bias: bool = True  # Qwen2's config.json does not say so; its q/k/v always carry a bias

    @classmethod
    def from_config(cls, config):
        config = {k: v for k, v in config.items() if k != "attention_bias"}
        return super().from_config(config)


def fake() -> ModelArgs:
    """A tiny random-weight config for tests: 2 layers, GQA, q/k/v bias, untied lm_head."""
    return ModelArgs(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
    )
