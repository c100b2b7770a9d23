"""A BPE tokenizer.json in a form the pure-Python backend loads fast: the merges as an int32 table.

Loading a tokenizer.json in pure Python spends most of its time on the merges: parsing ~260k JSON pairs,
checking them, and looking each one's three tokens up by string (Gemma 3's 262k vocabulary: 1.25 s to
the first encode on the build box, several seconds on a phone). The exporter resolves that once:

    tokenizer.compact.npz   spec    uint8 [n]     the tokenizer.json as UTF-8 JSON, with model.vocab a list
                                                  of tokens in id order and no model.merges
                            merges  int32 [m, 3]  (left id, right id, merged id) in rank order

It is a second copy of what tokenizer.json says (the `tokenizers` backend still reads that), hashed in the
manifest like every bundle file, and used by the pure backend only. Loading it trusts nothing: the
arrays' dtypes and shapes are checked, every id must be inside the vocabulary, and the spec goes through
the same checks as a tokenizer.json.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np

from edge_sdk.errors import BundleError

from . import bpe
from .safety import MAX_TOKEN_CHARS, MAX_TOKENIZER_BYTES, MAX_VOCAB

COMPACT_FILE = "tokenizer.compact.npz"


def merge_table(model: dict) -> np.ndarray:
    """(left, right, merged) ids of a BPE model's merges, in rank order; BundleError for a merge whose
    tokens are not in the vocabulary."""
    return bpe.merge_table(model["vocab"], model.get("merges") or [])


def write_compact(spec: dict, path) -> bool:
    """Write the compact form of a BPE tokenizer.json (parsed) to `path`; False (nothing written) for
    other models."""
    model = spec.get("model") or {}
    vocab = model.get("vocab")
    if model.get("type") != "BPE" or not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        return False  # not BPE, or ids with holes: tokenizer.json alone serves it
    table = merge_table(model)
    tokens = sorted(vocab, key=vocab.__getitem__)
    rest = {**spec, "model": {**{k: v for k, v in model.items() if k != "merges"}, "vocab": tokens}}
    text = json.dumps(rest, ensure_ascii=False).encode("utf-8")
    buf = io.BytesIO()
    np.savez(buf, spec=np.frombuffer(text, dtype=np.uint8), merges=table)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return True


def read_compact(path) -> tuple[dict, np.ndarray]:
    """(tokenizer.json spec without merges, merges table) from a compact file, checked; the vocab is checked
    here, so the caller runs check_spec on the rest (`vocab_checked=True`)."""
    from ..bundle.npz import read_npz

    path = os.fspath(path)
    try:
        if os.path.getsize(path) > 2 * MAX_TOKENIZER_BYTES:
            raise BundleError(f"{path} is larger than any tokenizer; re-export the bundle")
        with open(path, "rb") as f:
            data = f.read(2 * MAX_TOKENIZER_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"cannot read {path} ({exc.strerror}); re-export the bundle") from None

    def check(key, shape, dtype):  # headers checked before any data is read (a bundle is untrusted input)
        if key not in ("spec", "merges") or (dtype, len(shape)) != ((np.uint8, 1) if key == "spec" else (np.int32, 2)):
            return f"{key[:40]!r} is {dtype} {list(shape)[:4]}, not a compact tokenizer array"
        return None

    arrays = read_npz(data, path, check, max_members=2)
    if arrays.keys() != {"spec", "merges"}:
        raise BundleError(f"{path} is not a compact tokenizer file (it holds {sorted(arrays)}); re-export the bundle")
    raw, table = arrays["spec"], arrays["merges"]
    if raw.dtype != np.uint8 or raw.ndim != 1 or table.dtype != np.int32 or table.ndim != 2 or table.shape[1] != 3:
        raise BundleError(f"{path}: unexpected arrays (spec {raw.dtype}{raw.shape}, merges {table.dtype}{table.shape}); "
                          "re-export the bundle")
    try:
        spec = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: its tokenizer spec is not JSON ({str(exc)[:120]}); re-export the bundle") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict) or spec["model"].get("type") != "BPE":
        raise BundleError(f"{path}: not a compact BPE tokenizer; re-export the bundle")
    tokens = spec["model"].get("vocab")
    # The checks check_spec makes per vocab entry, made at C speed over the list (ids are its positions).
    if (not isinstance(tokens, list) or not tokens or len(tokens) > MAX_VOCAB
            or not all(type(t) is str for t in tokens) or max(map(len, tokens)) > MAX_TOKEN_CHARS):
        raise BundleError(f"{path}: the vocabulary must be a list of at most {MAX_VOCAB} tokens of at most "
                          f"{MAX_TOKEN_CHARS} characters; re-export the bundle")
    vocab = dict(zip(tokens, range(len(tokens))))
    if len(vocab) != len(tokens):
        raise BundleError(f"{path}: a token is listed twice in the vocabulary; re-export the bundle")
    spec["model"]["vocab"] = vocab
    n = len(tokens)
    if table.size and (table.min() < 0 or table.max() >= n):
        raise BundleError(f"{path}: a merge refers to a token id outside the {n}-token vocabulary; re-export the bundle")
    return spec, table
