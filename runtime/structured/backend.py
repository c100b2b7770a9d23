"""llguidance, imported lazily: the grammar engine, its tokenizer (one per loaded bundle) and its limits.

llguidance is the optional ``[structured]`` extra (MIT, no Python dependencies, no torch; abi3 wheels for
linux x86_64/aarch64 and macOS arm64). The plain device install does not carry it, so nothing imports it
until a request asks for structured output; then a missing engine is a StructuredOutputError naming the
extra, never an ImportError traceback.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from edge_sdk import install_hint
from edge_sdk.errors import StructuredOutputError

_lock = threading.Lock()
_tokenizers: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def engine():
    """The llguidance module, or a StructuredOutputError that says how to install it."""
    try:
        import llguidance
    except ImportError:
        raise StructuredOutputError(
            "structured output (response_format, grammar, tools) needs the grammar engine llguidance: "
            f"{install_hint('structured')}") from None
    return llguidance


def limits():
    """Bounds on the work one grammar may cause: grammars and schemas come from requests (untrusted).

    Build: at most ~100 ms of lexer work and 200k grammar symbols; per token: ~15 ms of lexer and Earley
    work at worst (llguidance's own speeds: ~50k fuel/ms at build, ~14k/ms and ~20k items/ms per step).
    A grammar over these is refused at compile time or stops the generation with a clear error."""
    return engine().LLParserLimits(initial_lexer_fuel=5_000_000, step_lexer_fuel=200_000, step_max_items=50_000,
                                   max_lexer_states=100_000, max_grammar_size=200_000, verbose_errors=False)


def tokenizer_for(model) -> Any:
    """The llguidance tokenizer of a loaded Model, built once from the bundle's tokenizer.json (0.6-1 s for a
    49k vocabulary) and kept while the Model lives. Its vocabulary is the logits' width (a graph may pad it
    past the tokenizer's last id; those ids are never allowed) and its EOS ids are the bundle's."""
    with _lock:
        tok = _tokenizers.get(model)
        if tok is None:
            tok = _build_tokenizer(model)
            _tokenizers[model] = tok
        return tok


def _build_tokenizer(model):
    from ..bundle import resolve

    llg = engine()
    manifest = model.manifest
    path = resolve(model.bundle_dir, manifest, manifest["tokenizer"]["file"], "tokenizer.file")
    n_vocab = int(manifest["architecture"]["vocab_size"])
    if model.tokenizer.vocab_size > n_vocab:
        from edge_sdk.errors import BundleError

        raise BundleError(f"the tokenizer has {model.tokenizer.vocab_size} tokens but the graph's logits only "
                          f"{n_vocab}; the bundle is malformed - re-export it")
    try:
        return llg.LLTokenizer(path.read_text(encoding="utf-8"), n_vocab=n_vocab,
                               eos_token=list(model.eos_token_ids))
    except Exception as e:  # a tokenizer.json our tokenizer reads but llguidance does not (a new pre-tokenizer)
        raise StructuredOutputError(f"the grammar engine cannot read this bundle's tokenizer ({str(e)[:200]}); "
                                    "structured output is not available for it") from None


def new_matcher(tokenizer, grammar: str):
    """A matcher for one generation (~1 ms). An invalid grammar is a ValueError with the engine's reason."""
    llg = engine()
    matcher = llg.LLMatcher(tokenizer, grammar, log_level=0, limits=limits())
    if matcher.is_error():
        raise ValueError(f"the grammar engine cannot compile this: {_clean(matcher.get_error())}")
    return matcher


def _clean(message: str) -> str:
    """llguidance's messages start with its internal location ("tag: ..."); keep the reason, bounded."""
    return " ".join(message.split())[:500]
