"""One generation under a grammar: the token loop's constraint.

The loop (runtime/generate.py) asks two things of it:

    sampler(base)      a sampler that picks only tokens the grammar allows (EOS only once it accepts)
    advance(token)     consume the token; return (tokens the grammar forces next, whether it is complete)

Sampling stays exact: every sampler here draws from the same distribution as masking the logits first and
then sampling with the request's settings (temperature, top-k, top-p, min-p), but touches the whole
logits row only when it has to:

- greedy: the argmax; when the grammar allows it, it is the masked argmax too. One token check (~1 us).
- top-k (with or without top-p/min-p after it): when all k candidates are allowed, the masked top-k set
  is the same set with the same logits, so the base sampler's draw is already the masked draw.
- temperature only: one draw from the full distribution; an allowed draw is kept (rejection sampling),
  otherwise one draw from the masked row. Both branches together give exactly the masked distribution:
  P(t) = p_t + (1 - A) p_t / A = p_t / A for an allowed t, where A is the allowed mass.
- top-p or min-p without top-k: their cut depends on the renormalised masked distribution: mask the row.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from edge_sdk.errors import StructuredOutputError

from .mask import Bitmask

__all__ = ["GrammarConstraint", "ConstraintStats"]


@dataclass
class ConstraintStats:
    """What the grammar cost one generation (benchmarks/structured_overhead.py reads these)."""

    grammar_s: float = 0.0  # time in the grammar engine and masking: checks, masks, consuming tokens
    sampled: int = 0  # tokens chosen by the sampler
    checked: int = 0  # of those, accepted by checking the chosen token(s) only (no full-row mask)
    masked: int = 0  # full logits rows masked
    forced: int = 0  # tokens the grammar forced (fast-forward: no sampling, run in one pass)


class GrammarConstraint:
    """A matcher for one request plus the mask buffer it fills (see the module doc)."""

    def __init__(self, matcher, vocab: int, eos_ids: Sequence[int]):
        self.matcher = matcher
        self.mask = Bitmask(vocab)
        self.eos = frozenset(int(e) for e in eos_ids)
        self.stats = ConstraintStats()

    # -- choosing a token ----------------------------------------------------------------------------
    def sampler(self, base: Callable[[np.ndarray], int], *, temperature: float = 0.0, top_k: int = 0,
                top_p: float = 1.0, min_p: float = 0.0) -> Callable[[np.ndarray], int]:
        """Wrap `base` (sampling.make_sampler with these settings) so it only picks allowed tokens."""
        if temperature == 0:
            def pick(logits):
                token = int(np.argmax(logits))
                if self._allowed(token):
                    self.stats.checked += 1
                    return token
                return int(np.argmax(self._masked(logits)))
        elif top_k > 0:
            k = int(top_k)

            def pick(logits):
                if k < logits.shape[-1]:
                    kth = np.partition(logits, -k)[-k]
                    candidates = np.flatnonzero(logits >= kth)  # ties with the k-th are kept, as top_k_mask does
                else:
                    candidates = np.arange(logits.shape[-1])
                if self._all_allowed(candidates):
                    self.stats.checked += 1
                    return base(logits)
                return base(self._masked(logits))
        elif top_p >= 1.0 and min_p <= 0.0:
            def pick(logits):
                token = base(logits)
                if self._allowed(token):
                    self.stats.checked += 1
                    return token
                return base(self._masked(logits))
        else:
            def pick(logits):
                return base(self._masked(logits))

        def sample(logits: np.ndarray) -> int:
            self.stats.sampled += 1
            if self.matcher.is_error():
                raise self._engine_error()
            return pick(logits)

        return sample

    def _allowed(self, token: int) -> bool:
        t0 = time.perf_counter()
        if token in self.eos:  # the engine validates text tokens; EOS is allowed exactly when it accepts
            ok = self.matcher.is_accepting()
        else:
            ok = self.matcher.validate_tokens([token]) == 1
        self.stats.grammar_s += time.perf_counter() - t0
        return ok

    def _all_allowed(self, tokens: np.ndarray) -> bool:
        t0 = time.perf_counter()
        self.mask.fill(self.matcher)
        ok = self.mask.allows_all(tokens)
        self.stats.grammar_s += time.perf_counter() - t0
        return ok

    def _masked(self, logits: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        self.mask.fill(self.matcher)
        if self.matcher.is_error():
            raise self._engine_error()
        out = self.mask.apply(logits)
        self.stats.masked += 1
        self.stats.grammar_s += time.perf_counter() - t0
        if not np.isfinite(out).any():
            # The grammar allows only tokens the model gives -inf (or allows none): nothing can be sampled.
            raise StructuredOutputError("the grammar allows no token the model can produce here; the grammar and "
                                        "the model's vocabulary do not fit together")
        return out

    # -- after a token ------------------------------------------------------------------------------
    def advance(self, token: int) -> tuple[list[int], bool]:
        """Consume `token`; return (the tokens the grammar forces next, already consumed; whether the grammar
        is complete, i.e. only EOS may follow)."""
        t0 = time.perf_counter()
        m = self.matcher
        if not m.consume_token(int(token)):
            raise self._engine_error(f"token {token} was not allowed")
        forced = list(m.compute_ff_tokens())
        if forced and not m.consume_tokens(forced):
            raise self._engine_error("its forced tokens were refused")
        self.stats.forced += len(forced)
        done = m.is_stopped()
        self.stats.grammar_s += time.perf_counter() - t0
        return forced, done

    def _engine_error(self, what: str = "") -> StructuredOutputError:
        reason = " ".join(self.matcher.get_error().split())[:300]
        return StructuredOutputError("the grammar engine stopped this generation"
                                     + (f" ({what})" if what else "") + (f": {reason}" if reason else "")
                                     + "; the grammar or schema is too complex for its per-token limits - simplify it")
