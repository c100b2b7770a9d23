"""The BERT encoder, as data: dimensions named as in HF ``config.json`` and the weight-name map.

all-MiniLM-L6-v2 and most sentence-transformers models of its generation are BERT encoders; their
differences are these numbers. Emitters read the fields, never the model's name.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edge_sdk.errors import UnsupportedModelError

ENCODERS: tuple[str, ...] = ("bert",)

# Logical name -> HF state-dict name of BertModel (what sentence-transformers loads). `{i}` is the layer.
BERT_WEIGHTS: dict[str, str] = {
    "word": "embeddings.word_embeddings.weight",
    "position": "embeddings.position_embeddings.weight",
    "token_type": "embeddings.token_type_embeddings.weight",
    "embed_norm": "embeddings.LayerNorm.weight",
    "embed_norm_bias": "embeddings.LayerNorm.bias",
    "q": "encoder.layer.{i}.attention.self.query.weight",
    "q_bias": "encoder.layer.{i}.attention.self.query.bias",
    "k": "encoder.layer.{i}.attention.self.key.weight",
    "k_bias": "encoder.layer.{i}.attention.self.key.bias",
    "v": "encoder.layer.{i}.attention.self.value.weight",
    "v_bias": "encoder.layer.{i}.attention.self.value.bias",
    "o": "encoder.layer.{i}.attention.output.dense.weight",
    "o_bias": "encoder.layer.{i}.attention.output.dense.bias",
    "attn_norm": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "attn_norm_bias": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "up": "encoder.layer.{i}.intermediate.dense.weight",
    "up_bias": "encoder.layer.{i}.intermediate.dense.bias",
    "down": "encoder.layer.{i}.output.dense.weight",
    "down_bias": "encoder.layer.{i}.output.dense.bias",
    "mlp_norm": "encoder.layer.{i}.output.LayerNorm.weight",
    "mlp_norm_bias": "encoder.layer.{i}.output.LayerNorm.bias",
}
PER_LAYER = [n for n, v in BERT_WEIGHTS.items() if "{i}" in v]


@dataclass
class EncoderArgs:
    """Dimensions of a BERT encoder (post-norm, learned absolute positions, GELU MLP)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int  # width of the GELU MLP
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int = 512  # the longest input the position table covers
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"  # erf GELU, as transformers' "gelu"
    position_embedding_type: str = "absolute"
    model_type: str = "bert"

    def __post_init__(self) -> None:
        if self.model_type not in ENCODERS:
            raise UnsupportedModelError(f"encoder model_type {self.model_type!r} is not supported; supported: "
                                        f"{', '.join(ENCODERS)}")
        if self.hidden_act != "gelu":
            raise UnsupportedModelError(f"{self.model_type}: hidden_act={self.hidden_act!r} is not supported "
                                        "(only the erf 'gelu' of BERT)")
        if self.position_embedding_type != "absolute":
            raise UnsupportedModelError(f"{self.model_type}: position_embedding_type="
                                        f"{self.position_embedding_type!r} is not supported (only 'absolute')")
        if self.hidden_size % self.num_attention_heads:
            raise UnsupportedModelError(f"{self.model_type}: hidden_size {self.hidden_size} is not a multiple of "
                                        f"num_attention_heads {self.num_attention_heads}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "EncoderArgs":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def weight_name(self, logical: str, layer: int | None = None) -> str:
        name = BERT_WEIGHTS[logical]
        return name.format(i=layer) if layer is not None else name

    def expected_weights(self) -> list[str]:
        out = [BERT_WEIGHTS[n] for n in BERT_WEIGHTS if n not in PER_LAYER]
        for i in range(self.num_hidden_layers):
            out += [self.weight_name(n, i) for n in PER_LAYER]
        return out

    def parameter_count(self) -> int:
        h, f = self.hidden_size, self.intermediate_size
        per_layer = 4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h
        return (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h \
            + self.num_hidden_layers * per_layer


def fake() -> EncoderArgs:
    """A tiny random-weight encoder for tests: 2 layers, 4 heads of 16."""
    return EncoderArgs(vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=64)
