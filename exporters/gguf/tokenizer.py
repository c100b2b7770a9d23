"""Normalise a tokenizer derived from a GGUF file into the model's original tokenizer.json.

transformers rebuilds a `tokenizers` tokenizer from the GGUF vocabulary, but only approximately:
depending on its version the decoder is a mixed sequence (ByteFallback, Fuse, Replace "▁",
ByteLevel) or a plain ByteLevel, the pre-tokenizer ignores `tokenizer.ggml.pre` (SmolLM2 splits
digits one by one before the GPT-2 regex), a BOS may be prepended although the model never had one,
and `save_pretrained` writes a stray `tokenizer.model` that is a copy of the whole GGUF.

For byte-level BPE vocabularies (`tokenizer.ggml.model == "gpt2"`) we rebuild the pipeline from the
GGUF's own metadata so that ids equal those of the original tokenizer.
"""
from __future__ import annotations

import json
from typing import Any

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
BYTE_LEVEL_NO_REGEX = {**BYTE_LEVEL, "use_regex": False}

_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _split(pattern: str) -> dict[str, Any]:
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


# `tokenizer.ggml.pre` (llama.cpp's name for the pre-tokenizer) -> the HF pre_tokenizer it stands for.
PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    "gpt-2": BYTE_LEVEL,  # what llama.cpp's converter writes (and our writer, exporters/gguf/write.py)
    "gpt2": BYTE_LEVEL,  # files written by our writer before it used llama.cpp's name
    # SmolLM / StarCoder family: every digit is its own word, then the GPT-2 regex.
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
    "starcoder": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
    "qwen2": {"type": "Sequence", "pretokenizers": [_split(_QWEN2_REGEX), BYTE_LEVEL_NO_REGEX]},
    "llama-bpe": {"type": "Sequence", "pretokenizers": [_split(_LLAMA3_REGEX), BYTE_LEVEL_NO_REGEX]},
}


def normalise_gguf_tokenizer(tokenizer_json: str, gguf_meta: dict[str, Any]) -> tuple[str, list[str]]:
    """Return (fixed tokenizer.json text, list of what was changed)."""
    tok = json.loads(tokenizer_json)
    changes: list[str] = []
    if gguf_meta.get("tokenizer.ggml.model") != "gpt2":
        return tokenizer_json, changes  # SentencePiece vocabularies round-trip well enough; nothing to fix
    pre = gguf_meta.get("tokenizer.ggml.pre", "gpt2")
    want_pre = PRE_TOKENIZERS.get(pre)
    if want_pre is None:
        changes.append(f"unknown tokenizer.ggml.pre {pre!r}: kept transformers' pre-tokenizer")
    elif tok.get("pre_tokenizer") != want_pre:
        tok["pre_tokenizer"] = want_pre
        changes.append(f"pre_tokenizer rebuilt from tokenizer.ggml.pre={pre!r}")
    if tok.get("normalizer") is not None:
        tok["normalizer"] = None
        changes.append("normalizer removed (byte-level BPE has none)")
    want_dec = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    if tok.get("decoder") != want_dec:
        tok["decoder"] = want_dec
        changes.append("decoder set to plain ByteLevel (was a mixed SentencePiece/ByteLevel sequence)")
    add_bos = bool(gguf_meta.get("tokenizer.ggml.add_bos_token", False))
    if not add_bos and tok.get("post_processor") is not None:
        tok["post_processor"] = None
        changes.append("post_processor removed (the model adds no BOS)")
    return json.dumps(tok, ensure_ascii=False), changes
