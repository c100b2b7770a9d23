"""Quality checks that run on the device install (numpy + onnxruntime): perplexity and greedy agreement.

Both are meant for comparing an export with its reference (e.g. an int4 bundle against the fp32
bundle of the same model): same tokenizer, same text, same prompts, so the numbers differ only by
what quantization changed.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .generate import common_prefix, generate_tokens
from .sampling import make_sampler

DEFAULT_PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "Write a Python function that returns the factorial of n.",
    "List three tips for saving battery on a phone.",
    "Translate 'good morning, how are you?' into Spanish.",
)
DEFAULT_WINDOW = 512  # tokens of context per pass (capped by the bundle's max context)
DEFAULT_CHUNK = 64  # tokens per forward pass inside a window: bounds the [chunk, vocab] logits in memory


def _token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row; logits [n, vocab], targets [n] -> [n] (float64)."""
    x = logits.astype(np.float64)
    peak = x.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(x - peak).sum(axis=-1)) + peak[:, 0]
    return log_z - x[np.arange(len(targets)), targets]


def perplexity(model, text: str | None = None, *, ids: Sequence[int] | None = None, window: int | None = None,
               stride: int | None = None, chunk: int = DEFAULT_CHUNK,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Perplexity of `text` (default: the built-in eval text) under `model`, with sliding windows.

    The text is encoded as plain text (with BOS if the bundle adds one), or `ids` are used as given.
    Windows of `window` tokens start every `stride` tokens; each window scores only the tokens the
    previous one did not, so every token after the first window is predicted from at least
    window - stride tokens of context (default stride: window // 2). The first token is never
    scored (nothing predicts it). Returns ppl, nll (mean, nats), tokens scored, text_tokens,
    window, stride. Resets the model's KV cache. `progress(message)` is told about each window.
    """
    if ids is None:
        if text is None:
            from .eval_text import EVAL_TEXT

            text = EVAL_TEXT
        ids = model.encode_prompt(text, raw=True)
    ids = np.asarray(list(ids), dtype=np.int64)
    n = len(ids)
    if n < 2:
        raise ValueError(f"perplexity needs a text of at least 2 tokens, got {n}")
    cap = model.max_context
    window = min(DEFAULT_WINDOW, cap) if window is None else window
    if not 2 <= window <= cap:
        raise ValueError(f"window must be in 2..{cap} (the bundle's maximum context), got {window}")
    stride = max(1, window // 2) if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in 1..{window} (the window), got {stride}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")

    decoder, engine = model.decoder, model.engine
    total, count = 0.0, 0
    scored_to = 1  # targets [1, scored_to) are done
    begin = 0
    windows = 1 + max(0, -(-(n - window) // stride))
    try:
        while True:
            end = min(begin + window, n)
            if progress is not None:
                progress(f"perplexity: window {begin // stride + 1}/{windows} (tokens {begin}-{end} of {n})")
            decoder.reset()  # each window starts from an empty cache
            for p in range(begin, end, chunk):
                q = min(p + chunk, end)
                logits = engine.forward(ids[p:q].tolist(), all_logits=True)  # [q-p, vocab]: row r predicts p+r+1
                # Targets t in [max(scored_to, p+1), q+1) ∩ [.., end): their predicting rows are t-1-p.
                lo = max(scored_to, p + 1)
                hi = min(q + 1, end)
                if lo < hi:
                    total += float(_token_nll(logits[lo - 1 - p:hi - 1 - p], ids[lo:hi]).sum())
                    count += hi - lo
            scored_to = end
            if end == n:
                break
            begin += stride
    finally:
        decoder.reset()  # the engine was driven directly; leave the decoder consistent
    nll = total / count
    return {"ppl": math.exp(nll), "nll": nll, "tokens": count, "text_tokens": n, "window": window, "stride": stride}


def greedy_tokens(model, prompt_ids: Sequence[int], max_new_tokens: int) -> list[int]:
    """The model's greedy continuation (stops at its eos tokens)."""
    return list(generate_tokens(model.decoder, prompt_ids, max_new_tokens=max_new_tokens, sampler=make_sampler(0.0),
                                eos_ids=model.eos_token_ids))


def greedy_agreement(model, reference_model, prompts: Sequence[str] | None = None,
                     max_new_tokens: int = 32, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """How closely `model`'s greedy replies follow `reference_model`'s (another loaded bundle).

    Each prompt goes through each model's own chat template. Per prompt: the matching prefix length
    (tokens before the first difference), the lengths, and whether the replies are identical.
    Summary: identical count and match_fraction = matched tokens / reference tokens.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    prompts = list(DEFAULT_PROMPTS if prompts is None else prompts)
    if not prompts:
        raise ValueError("greedy_agreement needs at least one prompt")
    rows = []
    for i, prompt in enumerate(prompts, 1):
        if progress is not None:
            progress(f"greedy agreement: prompt {i}/{len(prompts)}")
        ids = model.encode_prompt(prompt)
        ref_ids = reference_model.encode_prompt(prompt)
        got = greedy_tokens(model, ids, max_new_tokens)
        ref = greedy_tokens(reference_model, ref_ids, max_new_tokens)
        rows.append({"prompt": prompt, "match_prefix": common_prefix(got, ref), "tokens": len(got),
                     "reference_tokens": len(ref), "identical": got == ref, "same_prompt_ids": ids == ref_ids})
    ref_total = sum(r["reference_tokens"] for r in rows)
    return {"prompts": rows, "identical": sum(r["identical"] for r in rows), "total": len(rows),
            "match_fraction": sum(r["match_prefix"] for r in rows) / ref_total if ref_total else 1.0,
            "max_new_tokens": max_new_tokens}
