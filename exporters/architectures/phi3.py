"""Phi-3 / Phi-3.5 / Phi-4-mini: the Llama block with q/k/v stored as one `qkv_proj` tensor and gate/up as
one `gate_up_proj` (split by `prepare_weights`), RoPE on part of each head (`partial_rotary_factor`,
0.75 on Phi-4-mini) with longrope scaling (short factors within the pretraining context), and on
Phi-3-mini a sliding window over every layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import DecoderArgs

QKV = "model.layers.{i}.self_attn.qkv_proj.weight"
GATE_UP = "model.layers.{i}.mlp.gate_up_proj.weight"


@dataclass
class ModelArgs(DecoderArgs):
    model_type: ClassVar[str] = "phi3"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelArgs":
        cfg = dict(config)
        rope = cfg.get("rope_parameters") or {}
        if cfg.get("partial_rotary_factor") is None and rope.get("partial_rotary_factor") is not None:
            cfg["partial_rotary_factor"] = rope["partial_rotary_factor"]
        if cfg.get("original_max_position_embeddings") is None and rope.get("original_max_position_embeddings"):
            cfg["original_max_position_embeddings"] = rope["original_max_position_embeddings"]
        if (rope.get("rope_type") or rope.get("type") or "default") != "default" and not cfg.get("rope_scaling"):
            cfg["rope_scaling"] = rope
        if cfg.get("sliding_window"):  # Phi-3-mini: every layer slides (transformers' Phi3 masks all of them)
            cfg["layer_types"] = ["sliding_attention"] * int(cfg["num_hidden_layers"])
        return super().from_config(cfg)

    def expected_weights(self) -> list[str]:
        """The checkpoint's names: the fused tensors, not the split ones the emitters read."""
        split = {self.weight_name(n, i) for i in range(self.num_hidden_layers) for n in ("q", "k", "v", "gate", "up")}
        fused = [name.format(i=i) for i in range(self.num_hidden_layers) for name in (QKV, GATE_UP)]
        return [n for n in super().expected_weights() if n not in split] + fused

    def fused_weight(self, slot: str, layer: int) -> str | None:
        return {"qkv": QKV, "gate_up": GATE_UP}[slot].format(i=layer) if slot in ("qkv", "gate_up") else None

    def prepare_weights(self, weights: dict[str, Any]) -> dict[str, Any]:
        """Split qkv_proj and gate_up_proj by rows: arrays, or a GGUF's blocks (exporters/gguf/blocks.Blocks)."""
        out = dict(weights)
        for i in range(self.num_hidden_layers):
            for fused, parts, sizes in ((QKV, ("q", "k", "v"), (self.q_dim, self.kv_dim, self.kv_dim)),
                                        (GATE_UP, ("gate", "up"), (self.intermediate_size,) * 2)):
                if fused.format(i=i) in weights:
                    pieces = _split_rows(weights[fused.format(i=i)], sizes)
                    out.update({self.weight_name(p, i): x for p, x in zip(parts, pieces)})
        return out


def _split_rows(x, sizes):
    ends = np.cumsum(sizes)
    if isinstance(x, np.ndarray):
        return np.split(x, ends[:-1])
    return [x.take(np.arange(e - n, e)) for n, e in zip(sizes, ends)]  # Blocks: rows keep codes, scales, offsets


def fake() -> ModelArgs:
    """A tiny random-weight config for tests: 2 layers, GQA, RoPE on half of each head, longrope (short
    factors that differ per frequency, so a wrong table shows; the 4x context gives an attention factor
    of 1.118), untied head."""
    rng = np.random.default_rng(0)
    return ModelArgs(
        vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-5,
        rope_theta=10000.0, tie_word_embeddings=False, partial_rotary_factor=0.5, original_max_position_embeddings=256,
        rope_scaling={"rope_type": "longrope", "short_factor": [round(float(x), 3) for x in rng.uniform(1, 3, 8)],
                      "long_factor": [round(float(x), 3) for x in rng.uniform(3, 9, 8)]},
    )


def hf_config(args: ModelArgs) -> dict[str, Any]:
    """The transformers config.json of `args` (tests build random models from fake())."""
    cfg = {k: v for k, v in args.to_dict().items()
           if k not in ("norm_offset", "embed_scale", "sandwich_norms", "attention_scale", "layer_types",
                        "rope_local_theta", "qk_norm", "attention_bias")}
    cfg["rope_scaling"] = {"type": "longrope", **{k: v for k, v in args.rope_scaling.items() if k != "rope_type"}}
    return {**cfg, "pad_token_id": 0}
