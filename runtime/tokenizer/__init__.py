"""The device-side tokenizer: a Hugging Face tokenizer.json, encoded and decoded without native code.

core.py       Tokenizer: loading (pure Python or the Rust `tokenizers` when installed), encode, decode
bpe.py        byte-level and SentencePiece-style BPE models
text.py       normalizers, pre-tokenizers, and the translation of HF regexes to the stdlib `re`
decoders.py   HF decoders (ByteLevel, ByteFallback, Metaspace ...) as token -> bytes
streaming.py  StreamingDetokenizer: text pieces as tokens arrive, never half a character
safety.py     a tokenizer.json is untrusted: ids, sizes and regexes checked before use
"""
from __future__ import annotations

from .core import BACKENDS, Tokenizer
from .streaming import StreamingDetokenizer

__all__ = ["Tokenizer", "StreamingDetokenizer", "BACKENDS"]
