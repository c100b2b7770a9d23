"""Generation as plain generators, in layers:

    Decoder.prefill / step   tokens in, logits out; remembers which tokens its KV cache holds
    generate_tokens          token-level loop: sample, stop on eos / length; knows nothing of text
    stream_text              detokenize incrementally, apply stop strings, yield text pieces

`Decoder.prefill` reuses the longest prefix the cache already holds that was computed as a prompt, so a
prompt sharing a system prompt (or a conversation) with the previous one runs only what follows it. Tokens
decoded one at a time are not reused (see MIN_PREFILL_ROWS): a chat turn runs the previous reply again,
unless ChatSession.settle() already did, right after that reply.
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


# A prompt's tokens are always run in passes of at least this many rows. onnxruntime computes a
# one-row pass with other kernels than a many-row one (int8 activations on x86 for int4 weights:
# logits off by up to 2.0 on SmolLM2; ~3e-5 even in fp32), while many-row passes give bit-identical
# rows however the prompt is split (measured). So a prompt computed in many-row passes is computed
# the same whatever the cache held before: the same request gives the same answer.
MIN_PREFILL_ROWS = 2


class Decoder:
    """An engine plus the list of tokens its cache holds.

    `clean` counts the leading cached tokens that were computed in many-row passes from position 0
    (prompts); tokens decoded one at a time are not clean, and a later prompt that contains them
    (the next chat turn) runs them again rather than reuse their one-row results.
    """

    def __init__(self, engine):
        self.engine = engine
        self.tokens: list[int] = []
        self.clean = 0

    @property
    def capacity(self) -> int:
        return self.engine.capacity

    def forward(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Run `ids` after the cached tokens and append them; keeps `clean` up to date."""
        before = len(self.tokens)
        logits = self.engine.forward(ids, all_logits=all_logits)
        self.tokens.extend(ids)
        if len(ids) >= MIN_PREFILL_ROWS and self.clean == before:
            self.clean = len(self.tokens)
        return logits

    def truncate(self, n: int) -> None:
        """Make the cache (and the token list) hold only its first `n` tokens."""
        extra = len(self.tokens) - n
        if extra > 0:
            self.engine.rewind(extra)
            del self.tokens[n:]
        self.clean = min(self.clean, len(self.tokens))

    def prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, int]:
        """Make the cache hold exactly `ids`; return (last logits, tokens actually run).

        Reuses the longest cached prefix that was computed as a prompt, and always runs at least
        MIN_PREFILL_ROWS tokens, so the logits do not depend on what the cache held before."""
        ids = list(ids)
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) > self.capacity:
            raise ContextLengthError(
                f"the prompt has {len(ids)} tokens but the bundle's maximum context is {self.capacity}; "
                "shorten the prompt or start a new conversation"
            )
        keep = max(0, min(common_prefix(self.tokens, ids), self.clean, len(ids) - MIN_PREFILL_ROWS))
        self.truncate(keep)
        logits = self.forward(ids[keep:])
        return logits, len(ids) - keep

    def step(self, token: int) -> np.ndarray:
        return self.forward([token])

    def reset(self) -> None:
        self.engine.reset()
        self.tokens.clear()
        self.clean = 0


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
                    eos_ids: Sequence[int] = (), stats: GenerationStats | None = None,
                    constraint=None) -> Iterator[int]:
    """Yield sampled token ids. The cache ends holding the prompt and every yielded token but the last.

    constraint: a grammar (runtime/structured; its sampler is `sampler`) whose `advance(token)` returns the
    tokens it forces next and whether it is complete. Forced tokens are yielded like sampled ones and run
    through the model together with the token before them, in one pass; a complete grammar ends the
    generation as EOS would (stop_reason "eos")."""
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
    produced = 0
    while True:
        if processor is not None:
            logits = processor(logits, seen)
        token = sampler(logits)
        if produced == 0:
            stats.ttft_s = time.perf_counter() - t0
            t_decode = time.perf_counter()
        if token in eos:
            stats.stop_reason = "eos"
            break
        run, complete = [token], False
        if constraint is not None:
            forced, complete = constraint.advance(token)
            room = max_new_tokens - produced - 1
            complete = complete and len(forced) <= room
            run += forced[:room]
        for t in run:
            produced += 1
            stats.new_tokens += 1
            stats.decode_s = time.perf_counter() - t_decode
            yield t
        if complete:  # only EOS may follow: no need to run the model for it
            stats.stop_reason = "eos"
            break
        if produced >= max_new_tokens:
            stats.stop_reason = "length"
            break
        if len(decoder.tokens) + len(run) > decoder.capacity:
            stats.stop_reason = "context"
            break
        if seen is not None:
            seen.extend(run)
        # Several tokens in one many-row pass: run right after a prompt, they count as computed like one
        # (Decoder.clean), which they are: many-row passes give the same rows however a sequence is split.
        logits = decoder.forward(run) if len(run) > 1 else decoder.step(token)
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
        tail = detokenizer.flush(drop_incomplete=True)  # a reply cut mid-character ends before it, not with U+FFFD
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
