"""What a sentence-transformers model does after the encoder: pooling, normalisation, input length.

Read from the loaded reference itself (the `SentenceTransformer` that validation compares against),
not from its JSON files: their layout changed between sentence-transformers 2.x and 6.x (the input
length moved from sentence_bert_config.json to the tokenizer's model_max_length), and the loaded
modules are, by definition, what `encode` runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from edge_sdk.errors import UnsupportedModelError

POOLING_MODES = ("mean", "cls", "max")  # the runtime's pooling functions (runtime/embed/pooling.py)


@dataclass(frozen=True)
class SentenceConfig:
    pooling: str  # one of POOLING_MODES
    normalize: bool  # unit-length vectors (cosine = dot product)
    max_tokens: int  # the longest input, special tokens included; longer inputs are truncated
    dim: int

    def to_dict(self) -> dict:
        return asdict(self)


def _pooling_mode(module) -> str:
    mode = getattr(module, "pooling_mode", None)  # sentence-transformers >= 6: one string
    if mode is None and hasattr(module, "get_pooling_mode_str"):  # 2.x - 5.x
        mode = module.get_pooling_mode_str()
    mode = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}.get(mode, mode)
    if mode not in POOLING_MODES:
        raise UnsupportedModelError(f"pooling {mode!r} is not supported; supported: {', '.join(POOLING_MODES)}")
    return mode


def sentence_config(reference, max_positions: int) -> SentenceConfig:
    """The pipeline of a loaded SentenceTransformer: Transformer -> Pooling -> optional Normalize."""
    kinds = [type(m).__name__ for m in reference]
    unknown = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unknown or not kinds or kinds[0] != "Transformer":  # a Dense projection would be silently dropped
        raise UnsupportedModelError(f"the model's modules are {kinds}; an embedder bundle runs Transformer -> Pooling "
                                    f"-> Normalize (not supported: {unknown or kinds})")
    pools = [m for m in reference if type(m).__name__ == "Pooling"]
    pooling = _pooling_mode(pools[0]) if pools else "mean"  # what sentence-transformers adds when there is none
    max_tokens = min(int(reference.get_max_seq_length() or max_positions), max_positions)
    dim = int(reference[0].auto_model.config.hidden_size)
    return SentenceConfig(pooling, "Normalize" in kinds, max_tokens, dim)
