"""Generation as plain generators, in layers:

    Decoder.prefill / step   tokens in, logits out; remembers which tokens its KV cache holds
    generate_tokens          token-level loop: sample, stop on eos / length; knows nothing of text
    stream_text              detokenize incrementally, apply stop strings, yield text pieces

`Decoder.prefill` reuses the longest prefix the cache already holds, so a chat turn (or a prompt
sharing a system prompt with the previous one) only runs its new tokens.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from edge_sdk.errors import ContextLengthError

from .stopping import StopStrings


@dataclass
class GenerationStats:
    prompt_tokens: int = 0  # tokens in the request's prompt
    prefilled_tokens: int = 0  # of those, how many were run (the rest were already in the cache)
    new_tokens: int = 0
    ttft_s: float = 0.0  # request start -> first token sampled
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stop_reason: str = ""  # "eos" | "length" | "stop" | "context" | "cancelled"

    @property
    def prefill_tok_s(self) -> float:
        return self.prefilled_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tok_s(self) -> float:
        # The first token comes from the prefill logits; the decode loop ran new_tokens - 1 steps.
        steps = self.new_tokens - 1
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else 0.0

    def summary(self) -> str:
        def rate(x: float) -> str:  # a simulated NPU runs at a fraction of a token per second
            return f"{x:.1f}" if x >= 1 or x == 0 else f"{x:.3f}"

        return (f"{self.new_tokens} tokens, prompt {self.prompt_tokens} ({self.prefilled_tokens} prefilled), "
                f"TTFT {self.ttft_s * 1000:.0f} ms, prefill {rate(self.prefill_tok_s)} tok/s, "
                f"decode {rate(self.decode_tok_s)} tok/s, stop: {self.stop_reason}")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Decoder:
    """An engine plus the list of tokens its cache holds."""

    def __init__(self, engine):
        self.engine = engine
        self.tokens: list[int] = []

    @property
    def capacity(self) -> int:
        return self.engine.capacity

    def prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, int]:
        """Make the cache hold exactly `ids`; return (last logits, tokens actually run)."""
        ids = list(ids)
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) > self.capacity:
            raise ContextLengthError(
                f"the prompt has {len(ids)} tokens but the bundle's maximum context is {self.capacity}; "
                "shorten the prompt or start a new conversation"
            )
        keep = min(common_prefix(self.tokens, ids), len(ids) - 1)  # run at least one token for logits
        self.engine.rewind(len(self.tokens) - keep)
        del self.tokens[keep:]
        logits = self.engine.forward(ids[keep:])
        self.tokens.extend(ids[keep:])
        return logits, len(ids) - keep

    def step(self, token: int) -> np.ndarray:
        logits = self.engine.forward([token])
        self.tokens.append(token)
        return logits

    def reset(self) -> None:
        self.engine.reset()
        self.tokens.clear()


def timed_prefill(decoder: Decoder, prompt_ids: Sequence[int], stats: GenerationStats) -> tuple[np.ndarray, float]:
    """Prefill (reusing the cached prefix) and record the prompt figures.

    Returns (last logits, request start time for the time to first token)."""
    stats.prompt_tokens = len(prompt_ids)
    t0 = time.perf_counter()
    logits, stats.prefilled_tokens = decoder.prefill(prompt_ids)
    stats.prefill_s = time.perf_counter() - t0
    return logits, t0


def generate_tokens(decoder: Decoder, prompt_ids: Sequence[int], *, max_new_tokens: int,
                    sampler: Callable[[np.ndarray], int],
                    processor: Callable[[np.ndarray, Sequence[int]], np.ndarray] | None = None,
                    eos_ids: Sequence[int] = (), stats: GenerationStats | None = None) -> Iterator[int]:
    """Yield sampled token ids. The cache ends holding the prompt and every yielded token but the last."""
    stats = stats if stats is not None else GenerationStats()
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    logits, t0 = timed_prefill(decoder, prompt_ids, stats)
    if max_new_tokens == 0:
        stats.stop_reason = "length"
        return
    eos = set(eos_ids)
    seen = list(prompt_ids) if processor else None
    t_decode = time.perf_counter()
    stats.stop_reason = "cancelled"  # until the loop ends on its own
    for i in range(max_new_tokens):
        if processor is not None:
            logits = processor(logits, seen)
        token = sampler(logits)
        if i == 0:
            stats.ttft_s = time.perf_counter() - t0
            t_decode = time.perf_counter()
        if token in eos:
            stats.stop_reason = "eos"
            break
        stats.new_tokens += 1
        stats.decode_s = time.perf_counter() - t_decode
        yield token
        if i + 1 == max_new_tokens:
            stats.stop_reason = "length"
            break
        if len(decoder.tokens) >= decoder.capacity:
            stats.stop_reason = "context"
            break
        if seen is not None:
            seen.append(token)
        logits = decoder.step(token)
    stats.decode_s = time.perf_counter() - t_decode


def stream_text(tokens: Iterator[int], detokenizer, stop: StopStrings | None = None,
                stats: GenerationStats | None = None) -> Iterator[str]:
    """Text pieces from a token stream; never half a UTF-8 character; stop strings cut the text."""
    try:
        for token in tokens:
            piece = detokenizer.add(token)
            if stop is not None and piece:
                piece, stopped = stop.feed(piece)
                if piece:
                    yield piece
                if stopped:
                    if stats is not None:
                        stats.stop_reason = "stop"
                    return
            elif piece:
                yield piece
        tail = detokenizer.flush()
        if stop is not None:
            tail, stopped = stop.feed(tail) if tail else ("", False)
            if stopped and stats is not None:
                stats.stop_reason = "stop"
            tail += "" if stopped else stop.flush()
        if tail:
            yield tail
    finally:
        close = getattr(tokens, "close", None)
        if close:
            close()
