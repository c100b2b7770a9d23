"""A tokenizer.json is untrusted: hostile regexes, bad ids and Rust panics become BundleErrors,
while the pre-tokenizers of real models keep working."""
from __future__ import annotations

import json
import time

import pytest

from edge_sdk.errors import BundleError
from edge_sdk.runtime.tokenizer import Tokenizer
from edge_sdk.runtime.tokenizer.safety import check_regex

# Pre-tokenizer patterns of published tokenizer.json files.
REAL = {
    "gpt2 / smollm2 (ByteLevel)": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama-3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "o200k": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
             r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
             r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "digits": r"\p{N}",
}

HOSTILE = {
    "nested quantifier": r"(a+)+$",
    "ambiguous alternation in a loop": r"(a|a)*b",
    "quantified group": r"(\s*x)*",
    "back-reference": r"(a)\1",
    "repeated group": r"(?:ab)+",
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_pre_tokenizers_are_accepted(name):
    check_regex(REAL[name], name)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_patterns_are_refused(name):
    with pytest.raises(BundleError, match="refused"):
        check_regex(HOSTILE[name], "pre_tokenizer")


def _spec(pre_tokenizer=None, vocab=None, added=None, merges=None):
    vocab = vocab if vocab is not None else {c: i for i, c in enumerate("abcdefgh")}
    return {"version": "1.0", "added_tokens": added or [], "normalizer": None, "pre_tokenizer": pre_tokenizer,
            "post_processor": None, "decoder": None,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "vocab": vocab, "merges": merges or []}}


@pytest.mark.parametrize("backend", ["pure", "fast"])
def test_catastrophic_split_is_refused_before_either_backend_runs(backend):
    if backend == "fast":
        pytest.importorskip("tokenizers")
    spec = _spec({"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False})
    t0 = time.perf_counter()
    with pytest.raises(BundleError, match=r"tokenizer\.pre_tokenizer\.pattern"):
        Tokenizer.from_json(json.dumps(spec), backend=backend)
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("change, words", [
    (lambda s: s["model"]["vocab"].update(a=-1), ["vocab['a']", "token id"]),
    (lambda s: s["model"]["vocab"].update(a="1"), ["vocab['a']"]),
    (lambda s: s["model"]["vocab"].update(a=True), ["vocab['a']"]),
    (lambda s: s["added_tokens"].append({"content": "<x>", "special": True}), ["added_tokens[0] has no id"]),
    (lambda s: s["added_tokens"].append({"id": 2.5, "content": "<x>"}), ["added_tokens[0].id"]),
    (lambda s: s["added_tokens"].append({"id": 9, "content": ""}), ["added_tokens[0].content"]),
    (lambda s: s["model"].update(merges=["ab"]), ["merges"]),
    (lambda s: s["model"].update(merges=[["a", 1]]), ["merges"]),
])
def test_bad_ids_and_entries_name_the_entry(change, words):
    spec = _spec()
    change(spec)
    with pytest.raises(BundleError) as e:
        Tokenizer.from_json(json.dumps(spec), backend="pure")
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_rust_panic_becomes_a_bundle_error(monkeypatch):
    """pyo3's PanicException derives from BaseException: `except Exception` would let it through."""
    tokenizers = pytest.importorskip("tokenizers")

    class PanicException(BaseException):
        pass

    tok = Tokenizer.from_json(json.dumps(_spec()), backend="fast")

    class Exploding:
        encode_special_tokens = False

        def encode(self, *a, **k):
            raise PanicException("regex backtrack limit")

    tok._fast.parsing = tok._fast.literal = Exploding()
    with pytest.raises(BundleError, match="PanicException"):
        tok.encode("abc")
    assert tokenizers  # the real package is what the wrapper guards
