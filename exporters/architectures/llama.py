"""Llama: SmolLM2, TinyLlama, Llama-2/3 without rope scaling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DecoderArgs


@dataclass
class ModelArgs(DecoderArgs):
    model_type: ClassVar[str] = "llama"


def fake() -> ModelArgs:
    """A tiny random-weight config for tests: 2 layers, GQA (4 query heads over 2 KV heads)."""
    return ModelArgs(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
    )
