"""One set of sampling defaults for every way of generating: `edge-sdk run` and `chat`, the Python API,
the server (fields a request leaves out) and the chat app.

A setting comes from, first to last:

1. the call: CLI flags, keyword arguments of generate/stream/send, a request's fields;
2. the bundle's manifest, section `generation`: written at export from the model's own
   `generation_config.json` (exporters/generation.py reads it as transformers does);
3. `GENERATION_DEFAULTS` here, for what the manifest leaves out: a GGUF carries no generation config,
   and a generation config that sets no sampling field (most only repeat the token ids) makes no choice.

Why greedy with a repetition penalty of 1.15: greedy keeps "the same request gives the same answer", and
without a penalty greedy decoding of a small model loops: SmolLM2-135M int4 looped on 16 of 20 open prompts
(256 tokens), 3 of 20 at 1.1 (poems and songs: "A moment of infinite possibilities," again and again), none
at 1.15, with factual answers about as good (17, 19 and 18 of 24 at 1.15, 1.1 and none). Measured with
benchmarks/chat_defaults.py; figures in docs/benchmarks.md#chat-defaults.
"""
from __future__ import annotations

from typing import Any

GENERATION_DEFAULTS: dict[str, Any] = {
    "max_new_tokens": 256,
    "temperature": 0.0,  # greedy
    "top_k": 0,  # off
    "top_p": 1.0,  # off
    "min_p": 0.0,  # off
    "repetition_penalty": 1.15,
    "frequency_penalty": 0.0,  # OpenAI's; off
    "presence_penalty": 0.0,  # OpenAI's; off
    "seed": None,  # a fresh random seed per call (only sampling uses it)
    "stop": None,
}

# A reply that copies from its context (a grammar-constrained answer quoting the prompt, a grounded answer quoting
# its passages) decodes without the penalty, because the penalty weighs every token already in the context, the
# prompt's included: at 1.15 greedy SmolLM2 extracted "Ana" aged 28 from "Ana Lima is 34", and answered an
# answerable question from the documents with a list of headings. The structured and RAG figures were measured so.
COPYING_REPETITION_PENALTY = 1.0


def for_copying(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` for a reply that copies from its context: the repetition penalty off unless the caller set one
    (a None is "not set"). The one rule structured output (Model.stream_ids), rag.ask and the app's grounded turns
    follow."""
    if settings.get("repetition_penalty") is not None:
        return settings
    return {**settings, "repetition_penalty": COPYING_REPETITION_PENALTY}


# For --help texts: where the defaults come from and how to change them.
HELP = ("Sampling defaults come from the bundle (its manifest's `generation` section, written at export from the "
        "model's generation_config.json; edge-sdk's defaults where the model has none: greedy, repetition penalty "
        "1.15, 256 new tokens). A flag overrides them for this run; to change them for good, edit the `generation` "
        "section of edge_manifest.json (a signed bundle must then be signed again).")


def resolve(bundle_defaults: dict[str, Any], known: set[str] | frozenset[str]) -> dict[str, Any]:
    """The settings a call starts from: edge-sdk's defaults, then the bundle's (a null there is "not set")."""
    settings = dict(GENERATION_DEFAULTS)
    settings.update({k: v for k, v in bundle_defaults.items() if k in known and v is not None})
    return settings


def describe(settings: dict[str, Any]) -> str:
    """A short human summary, e.g. "greedy, repetition penalty 1.15, up to 256 tokens"."""
    if settings["temperature"] == 0:
        parts = ["greedy"]
    else:
        parts = [f"temperature {settings['temperature']:g}"]
        if settings.get("top_k"):
            parts.append(f"top-k {settings['top_k']}")
        if settings.get("top_p", 1.0) < 1.0:
            parts.append(f"top-p {settings['top_p']:g}")
        if settings.get("min_p"):
            parts.append(f"min-p {settings['min_p']:g}")
    if settings.get("repetition_penalty", 1.0) != 1.0:
        parts.append(f"repetition penalty {settings['repetition_penalty']:g}")
    parts.append(f"up to {settings['max_new_tokens']} tokens")
    return ", ".join(parts)
