"""Log-probabilities in OpenAI's shapes, from the model's own logits (before penalties and temperature: what the
model thinks, whatever the sampling settings), as lm-evaluation-harness and other evaluation tools read them.

    TokenLogprobs   an observer for Model.stream_ids(confidence=...): each sampled token's log-probability and
                    its most likely alternatives, recorded on the worker thread as the tokens are sampled
    score_prompt    the prompt's own tokens, each under the logits of the tokens before it (completions' echo)
    chat_content    chat's shape: [{"token", "logprob", "bytes", "top_logprobs": [...]}, ...]
    legacy          completions' shape: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    Cursor          which tokens a streamed chunk's text covers
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

CHUNK = 64  # prompt rows per forward pass when scoring: [64, vocab] float32 logits at a time


@dataclass
class Scored:
    """One token with its log-probability (None for a prompt's first token: nothing predicts it) and the `top`
    most likely tokens at its position, most likely first."""

    token: int
    logprob: float | None
    top: list[tuple[int, float]]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64 (a 49k-entry sum in float32 loses digits)."""
    x = np.asarray(logits, dtype=np.float64)
    peak = x.max(axis=-1, keepdims=True)
    return x - (np.log(np.exp(x - peak).sum(axis=-1, keepdims=True)) + peak)


def _top(lp: np.ndarray, k: int) -> list[tuple[int, float]]:
    if k <= 0:
        return []
    idx = np.argpartition(lp, -k)[-k:]
    idx = idx[np.lexsort((idx, -lp[idx]))]  # most likely first; ties by id, so the order is reproducible
    return [(int(i), float(lp[i])) for i in idx]


class TokenLogprobs:
    """Observer (`observe(logits, token)`, as Model.stream_ids's `confidence=` takes): records every sampled token."""

    def __init__(self, top: int):
        self.top = top
        self.tokens: list[Scored] = []  # appended by the worker thread, read by the event loop

    def observe(self, logits, token) -> None:
        lp = log_softmax(logits)
        self.tokens.append(Scored(int(token), float(lp[int(token)]), _top(lp, self.top)))


class Tee:
    """Several observers as one (the router's confidence and the logprobs)."""

    def __init__(self, *observers):
        self.observers = observers

    def observe(self, logits, token) -> None:
        for o in self.observers:
            o.observe(logits, token)


def score_prompt(model, ids: Sequence[int], top: int, adapter: str | None) -> list[Scored]:
    """Each prompt token's log-probability given the tokens before it, from a prefill of the whole prompt.

    Runs on the worker thread that holds `model` (the pool lends a model to one request at a time). The passes
    have at least two rows each, so the cache ends holding the prompt as a prompt (generate.Decoder.clean): the
    generation that follows reuses it and answers exactly as it would have without the scoring."""
    ids = [int(i) for i in ids]
    model._activate(adapter)  # the adapter this request runs with, bound as a generation binds it
    decoder = model.decoder
    decoder.reset()
    out = [Scored(ids[0], None, [])]
    bounds = list(range(0, len(ids), CHUNK)) + [len(ids)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
        del bounds[-2]  # a one-row pass is computed by other kernels: fold it into the one before
    for p, q in zip(bounds, bounds[1:]):
        logits = decoder.forward(ids[p:q], all_logits=True)  # [q - p, vocab]: row r predicts token p + r + 1
        rows = min(q, len(ids) - 1) - p
        if rows > 0:
            lp = log_softmax(logits[:rows])
            for r in range(rows):
                t = ids[p + r + 1]
                out.append(Scored(t, float(lp[r, t]), _top(lp[r], top)))
    return out


class Tokens:
    """The text each token adds to a reply: what the detokenizer shows (special tokens show nothing)."""

    def __init__(self, tokenizer, hidden: set[int]):
        self.tokenizer, self.hidden = tokenizer, hidden
        self._cache: dict[int, bytes] = {}

    def bytes(self, token: int) -> bytes:
        if token not in self._cache:
            try:
                self._cache[token] = self.tokenizer.token_bytes(token)
            except ValueError:
                self._cache[token] = b""
        return self._cache[token]

    def text(self, token: int) -> str:
        return self.bytes(token).decode("utf-8", errors="replace")

    def shown(self, token: int) -> int:
        """Bytes of reply text this token accounts for."""
        return 0 if token in self.hidden else len(self.bytes(token))


def reply_tokens(scored: Sequence[Scored], tokens: Tokens, text: str, stopped: bool) -> list[Scored]:
    """The generated tokens of the reply `text`: hidden ones (eos, control tokens) dropped, and when a stop string
    cut the text (`stopped`), those that begin after the cut. (A reply cut by max_tokens mid-character keeps its last
    tokens: they were generated, though the text leaves out the incomplete character.)"""
    size, used, out = len(text.encode("utf-8")), 0, []
    for s in scored:
        if s.token in tokens.hidden:
            continue
        n = tokens.shown(s.token)
        if stopped and used >= size and n:
            break
        out.append(s)
        used += n
    return out


class Cursor:
    """Hands out, chunk by chunk of a stream, the tokens whose text the chunks so far have shown."""

    def __init__(self, observer: TokenLogprobs, tokens: Tokens):
        self.observer, self.tokens = observer, tokens
        self.i = 0
        self.used = 0  # bytes of shown text the handed-out tokens account for

    def take(self, shown: int, final: bool = False, stopped: bool = False) -> list[Scored]:
        """The tokens the first `shown` bytes of text account for; `final`: all the rest of the reply too (as
        reply_tokens decides with `stopped`)."""
        out = []
        recorded = self.observer.tokens
        while self.i < len(recorded):
            s = recorded[self.i]
            if s.token in self.tokens.hidden:
                self.i += 1
                continue
            n = self.tokens.shown(s.token)
            if self.used + n > shown and not (final and (self.used < shown or not stopped)):
                break
            out.append(s)
            self.used += n
            self.i += 1
        return out


def chat_content(scored: Sequence[Scored], tokens: Tokens) -> list[dict]:
    """OpenAI chat's `logprobs.content`."""
    def entry(token: int, logprob: float) -> dict:
        return {"token": tokens.text(token), "logprob": logprob, "bytes": list(tokens.bytes(token))}

    return [{**entry(s.token, s.logprob), "top_logprobs": [entry(t, lp) for t, lp in s.top]} for s in scored]


def legacy(scored: Sequence[Scored], tokens: Tokens, offset: int = 0) -> dict:
    """OpenAI completions' `logprobs`: per token its text, log-probability, the `top` alternatives plus the chosen
    token (so up to top + 1 entries, as OpenAI documents), and its character offset in the returned text."""
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for s in scored:
        text = tokens.text(s.token)
        out["tokens"].append(text)
        out["token_logprobs"].append(s.logprob)
        if s.logprob is None:
            out["top_logprobs"].append(None)
        else:
            top = {tokens.text(t): lp for t, lp in s.top}
            top.setdefault(text, s.logprob)
            out["top_logprobs"].append(top)
        out["text_offset"].append(offset)
        offset += len(text)
    return out
