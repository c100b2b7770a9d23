"""Prompt-lookup speculative decoding: greedy output, fewer forward passes on repetitive text.

Small models on a phone are memory-bound: one forward pass over k+1 tokens costs barely more than
one over a single token, because the weights are read once either way. When the reply repeats
the context (code edits, summaries quoting the prompt, lists), the next tokens can often be
*guessed* by finding the last n tokens earlier in the context and copying what followed them.
One forward pass over `[last token] + draft` then checks the whole guess at once:

    logits[j] is the model's prediction after draft[:j]      (j = 0 .. k)
    accept draft[j] while argmax(logits[j]) == draft[j]; argmax at the first mismatch is free

Every accepted token is exactly what plain greedy decoding would have produced, so the output is
token-identical to `generate_tokens` with an argmax sampler (up to float rounding differences
between a k+1-token and a 1-token forward on near-tied logits). Rejected positions are dropped
from the KV cache with `engine.rewind`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .generate import Decoder, GenerationStats, timed_prefill

DEFAULT_NUM_DRAFT = 8  # tokens guessed per verify pass; beyond ~10 acceptance rarely pays for the pass
DEFAULT_MAX_NGRAM = 3  # longest suffix matched; longer = fewer but more reliable guesses
MAX_NUM_DRAFT = 64
MAX_NGRAM = 16


@dataclass
class SpeculativeStats(GenerationStats):
    proposed: int = 0  # draft tokens sent to a verify pass
    accepted: int = 0  # of those, how many matched the model's greedy choice
    forwards: int = 0  # decode-time forward passes (verify passes + plain steps)

    @property
    def acceptance(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_forward(self) -> float:
        # Each decode pass decides its accepted drafts plus one token of its own.
        return (self.accepted + self.forwards) / self.forwards if self.forwards else 0.0

    def speculative_summary(self) -> dict:
        return {"proposed": self.proposed, "accepted": self.accepted, "acceptance": round(self.acceptance, 4),
                "forwards": self.forwards, "tokens_per_forward": round(self.tokens_per_forward, 3)}


def find_draft(tokens: Sequence[int], num_draft: int, max_ngram: int) -> list[int]:
    """Up to `num_draft` tokens that followed the most recent earlier occurrence of the context's
    last n tokens (n = max_ngram down to 1; the longest suffix that recurs wins). [] if none recurs."""
    if num_draft <= 0 or len(tokens) < 2:
        return []
    arr = np.asarray(tokens, dtype=np.int64)
    body = arr[:-1]  # a match must start before the suffix itself and be followed by >= 1 token
    for n in range(min(max_ngram, len(arr) - 1), 0, -1):
        suffix = arr[-n:]
        windows = np.lib.stride_tricks.sliding_window_view(body, n)  # [len-n, n]: windows[i] = arr[i:i+n]
        hits = np.flatnonzero((windows == suffix).all(axis=1))
        if hits.size:
            start = int(hits[-1]) + n  # the most recent occurrence: recent text predicts best
            return arr[start:start + num_draft].tolist()
    return []


def generate_tokens_speculative(decoder: Decoder, prompt_ids: Sequence[int], *, max_new_tokens: int,
                                eos_ids: Sequence[int] = (), num_draft: int = DEFAULT_NUM_DRAFT,
                                max_ngram: int = DEFAULT_MAX_NGRAM,
                                stats: GenerationStats | None = None, processor=None) -> Iterator[int]:
    """Greedy token ids, like `generate_tokens` with an argmax sampler, drafted by prompt lookup.

    processor: `(logits, seen_ids) -> logits` applied before each argmax, as in `generate_tokens`
    (the repetition penalty); each drafted position sees the ids before it, so the choice is the one
    plain decoding would make there.

    Same contract as `generate_tokens`: yields tokens; stats.stop_reason is eos / length / context /
    cancelled; when it ends, the cache holds exactly what plain decoding would leave (the prompt and
    every yielded token but the last, or all of them after eos). Pass a `SpeculativeStats` to get
    proposed / accepted counts (a plain `GenerationStats` works too, without them).
    """
    if not 1 <= num_draft <= MAX_NUM_DRAFT:
        raise ValueError(f"num_draft must be in 1..{MAX_NUM_DRAFT}, got {num_draft}")
    if not 1 <= max_ngram <= MAX_NGRAM:
        raise ValueError(f"max_ngram must be in 1..{MAX_NGRAM}, got {max_ngram}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    stats = stats if stats is not None else SpeculativeStats()
    counts = stats if isinstance(stats, SpeculativeStats) else SpeculativeStats()
    logits, t0 = timed_prefill(decoder, prompt_ids, stats)
    if max_new_tokens == 0:
        stats.stop_reason = "length"
        return
    eos = set(eos_ids)
    context = list(prompt_ids)  # prompt + yielded tokens: where drafts are looked up
    base = len(context)
    def choose(row: np.ndarray, seen: list[int]) -> int:
        return int(np.argmax(processor(row, seen) if processor is not None else row))

    pending = [choose(logits, context)]  # decided, not yet yielded; all but the last are in the cache
    stats.ttft_s = time.perf_counter() - t0
    t_decode = time.perf_counter()
    stats.stop_reason = "cancelled"  # until the loop ends on its own
    try:
        while True:
            for token in pending:
                if token in eos:
                    stats.stop_reason = "eos"
                    return
                context.append(token)
                stats.new_tokens += 1
                stats.decode_s = time.perf_counter() - t_decode
                yield token
                if stats.new_tokens == max_new_tokens:
                    stats.stop_reason = "length"
                    return
                # Plain decoding would now hold prompt + yielded[:-1]: stop where it would.
                if base + stats.new_tokens - 1 >= decoder.capacity:
                    stats.stop_reason = "context"
                    return
            # Here the cache holds context[:-1]; context[-1] still has to be run.
            last = context[-1]
            room = decoder.capacity - len(decoder.tokens) - 1
            # A draft longer than the remaining budget - 1 can only produce tokens nobody asks for.
            k = min(num_draft, max_new_tokens - stats.new_tokens - 1, room)
            draft = find_draft(context, k, max_ngram) if k > 0 else []
            counts.forwards += 1
            if not draft:
                pending = [choose(decoder.step(last), context)]
                continue
            batch = [last] + draft
            all_logits = decoder.forward(batch, all_logits=True)  # [k+1, vocab]
            m = 0
            while True:  # position m follows draft[:m]; its choice is the model's next token there
                token = choose(all_logits[m], context + draft[:m])
                if m == len(draft) or draft[m] != token:
                    break
                m += 1
            decoder.truncate(len(decoder.tokens) - (len(draft) - m))  # drop the rejected guesses
            counts.proposed += len(draft)
            counts.accepted += m
            pending = draft[:m] + [token]
    finally:
        stats.decode_s = time.perf_counter() - t_decode
        # Accepted drafts past the point where generation stopped are still cached: drop them so the
        # cache matches plain decoding (and a following prefill or chat turn sees the same state).
        held = base + stats.new_tokens - (0 if stats.stop_reason == "eos" else 1)
        decoder.truncate(max(held, base))
