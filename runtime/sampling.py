"""Token sampling as small pure numpy functions, composed once per request.

Every function takes a 1-D float32 logits vector over the vocabulary and returns a new vector
(the input is never modified). Filtered entries become ``-inf``. The semantics follow the
transformers logits processors/warpers (``RepetitionPenaltyLogitsProcessor``,
``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``, ``MinPLogitsWarper``)
and they are applied in the same order: repetition penalty, temperature, top-k, top-p, min-p,
then a draw from the softmax. The tests check the equivalence against transformers.

Temperature 0 means greedy (argmax) and ignores the other sampling settings, like transformers'
``do_sample=False``. The random generator is passed in, so a seed reproduces a run.

OpenAI's ``frequency_penalty`` and ``presence_penalty`` (which transformers does not have) follow OpenAI's
definition: ``logit[j] - count[j] * frequency_penalty - (count[j] > 0) * presence_penalty``, where
``count[j]`` is how often token j was generated so far in this reply (the prompt does not count). They
run after the repetition penalty, before temperature, as in vLLM.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "validate", "apply_repetition_penalty", "apply_frequency_presence_penalties", "apply_temperature", "top_k_mask", "top_p_mask",
    "min_p_mask", "make_sampler", "make_logits_processor",
]

_NEG_INF = np.float32(-np.inf)


def validate(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, *,
             frequency_penalty=0.0, presence_penalty=0.0) -> None:
    """Raise ``ValueError`` naming the first argument outside its valid range."""
    if not _is_real(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    if not _is_real(top_p) or not (0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p!r}")
    if not _is_real(min_p) or not (0.0 <= min_p < 1.0):
        raise ValueError(f"min_p must be in [0, 1) (0 = off), got {min_p!r}")
    if not _is_real(repetition_penalty) or not math.isfinite(repetition_penalty) or repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = off), got {repetition_penalty!r}")
    for name, value in (("frequency_penalty", frequency_penalty), ("presence_penalty", presence_penalty)):
        if not _is_real(value) or not (-2.0 <= value <= 2.0):  # OpenAI's range
            raise ValueError(f"{name} must be a number in [-2, 2] (0 = off), got {value!r}")


def _is_real(x) -> bool:
    # bool is an int subclass; True as a temperature is a caller bug, not 1.0.
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and not math.isnan(x)


def apply_repetition_penalty(logits: np.ndarray, seen_ids: Sequence[int], penalty: float) -> np.ndarray:
    """CTRL-style penalty over the set of ids seen so far (prompt + generated).

    A positive logit is divided by ``penalty``, a negative one multiplied, so that ``penalty > 1``
    always makes a seen token less likely. Each id counts once however often it was seen.
    """
    out = np.array(logits, dtype=np.float32, copy=True)
    if penalty == 1.0 or len(seen_ids) == 0:
        return out
    ids = np.unique(np.asarray(seen_ids, dtype=np.int64))
    picked = out[ids]
    out[ids] = np.where(picked < 0, picked * penalty, picked / penalty)
    return out


def apply_frequency_presence_penalties(logits: np.ndarray, generated_ids: Sequence[int], frequency_penalty: float,
                                       presence_penalty: float) -> np.ndarray:
    """OpenAI's penalties: subtract ``count * frequency_penalty + presence_penalty`` from the logit of every
    token generated ``count`` >= 1 times so far. Positive values discourage repeats, negative ones favour them."""
    out = np.array(logits, dtype=np.float32, copy=True)
    if len(generated_ids) == 0 or (frequency_penalty == 0 and presence_penalty == 0):
        return out
    ids, counts = np.unique(np.asarray(generated_ids, dtype=np.int64), return_counts=True)
    out[ids] -= (counts * frequency_penalty + presence_penalty).astype(np.float32)
    return out


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Divide by the temperature (> 0); < 1 sharpens the distribution, > 1 flattens it."""
    return (np.asarray(logits, dtype=np.float32) / np.float32(temperature)).astype(np.float32, copy=False)


def top_k_mask(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest logits (all ties with the k-th are kept too); ``k <= 0`` is off."""
    logits = np.asarray(logits, dtype=np.float32)
    if k <= 0 or k >= logits.shape[-1]:
        return logits.copy()
    # np.partition is O(vocab); a full sort would be O(vocab log vocab).
    kth = np.partition(logits, -k)[-k]
    return np.where(logits < kth, _NEG_INF, logits)


def top_p_mask(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches ``p``.

    Same rule as transformers: sort ascending, drop tokens whose cumulative probability is
    ``<= 1 - p``, and always keep the most likely token.
    """
    logits = np.asarray(logits, dtype=np.float32)
    out = logits.copy()
    if p >= 1.0:
        return out
    finite = np.isfinite(logits)
    if not finite.all():
        # After top-k most entries are -inf (probability 0, dropped anyway): work on the rest.
        idx = np.flatnonzero(finite)
        out[idx] = top_p_mask(logits[idx], p)
        return out
    probs = _softmax(logits)
    # Sorting 150k logits per token costs ~20 ms. Only the head of the distribution can survive:
    # if the tokens outside the m most likely ones hold at most 1 - p of the mass, they are all
    # dropped (their cumulative sums are <= that mass), and only the m need sorting. Real LM
    # distributions are peaked, so a few hundred usually suffice; flat ones fall back to all.
    n = probs.size
    m = min(256, n)
    while True:
        head = np.argpartition(probs, n - m)[n - m:] if m < n else np.arange(n)
        outside = 1.0 - probs[head].sum() if m < n else 0.0
        if m == n or outside <= 1.0 - p:
            break
        m = min(4 * m, n)
    order = head[np.argsort(probs[head], kind="stable")]  # ascending
    cumulative = outside + np.cumsum(probs[order])
    remove = cumulative <= (1.0 - p)
    remove[-1] = False  # keep at least one token
    if m < n:
        out[:] = _NEG_INF
        keep = order[~remove]
        out[keep] = logits[keep]
    else:
        out[order[remove]] = _NEG_INF
    return out


def min_p_mask(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Drop tokens whose probability is below ``min_p`` times the top token's probability."""
    logits = np.asarray(logits, dtype=np.float32)
    if min_p <= 0.0:
        return logits.copy()
    # p_i / p_max = exp(l_i - l_max): no need to normalise the softmax.
    relative = np.exp(logits - logits.max())
    out = np.where(relative < min_p, _NEG_INF, logits)
    out[int(np.argmax(logits))] = logits.max()  # keep at least one token
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    # float64 so that cumulative sums over a 150k vocabulary do not drift.
    e = np.exp(x.astype(np.float64) - x.max())
    return e / e.sum()


def make_sampler(
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> Callable[[np.ndarray], int]:
    """Build ``sample(logits) -> token_id`` for one request.

    ``temperature == 0`` returns argmax and ignores the other settings. Otherwise the logits go
    through temperature, top-k, top-p and min-p (each skipped when off) and one id is drawn from
    the softmax with ``seed``: an int (reproducible), a ``np.random.Generator`` (shared by the
    caller), or None (fresh entropy).
    """
    validate(temperature, top_k, top_p, min_p, 1.0)
    if temperature == 0:
        return _greedy
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    steps: list[Callable[[np.ndarray], np.ndarray]] = []
    if temperature != 1.0:
        steps.append(lambda x: apply_temperature(x, temperature))
    if top_k > 0:
        steps.append(lambda x: top_k_mask(x, int(top_k)))
    if top_p < 1.0:
        steps.append(lambda x: top_p_mask(x, top_p))
    if min_p > 0.0:
        steps.append(lambda x: min_p_mask(x, min_p))

    def sample(logits: np.ndarray) -> int:
        x = np.asarray(logits, dtype=np.float32)
        for step in steps:
            x = step(x)
        return _draw(x, rng)

    return sample


def _greedy(logits: np.ndarray) -> int:
    return int(np.argmax(logits))


def _draw(logits: np.ndarray, rng: np.random.Generator) -> int:
    """One draw from softmax(logits) with a single uniform number (inverse CDF)."""
    finite = np.isfinite(logits)
    if finite.all():
        candidates, x = None, logits
    else:  # after top-k/top-p/min-p usually a few dozen ids
        candidates = np.flatnonzero(finite)
        x = logits[candidates]
    # exp in float32 is plenty for sampling; the running sum is float64 so it does not drift.
    cdf = np.cumsum(np.exp(x - x.max()), dtype=np.float64)
    i = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), cdf.size - 1)
    return i if candidates is None else int(candidates[i])


def make_logits_processor(
    repetition_penalty: float = 1.0,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    prompt_tokens: int = 0,
) -> Callable[[np.ndarray, Sequence[int]], np.ndarray] | None:
    """Build ``process(logits, seen_ids) -> logits`` or None when there is nothing to do.

    Runs before the sampler (also before greedy argmax), like transformers' logits processors.
    ``seen_ids`` are the prompt and generated ids so far; the first ``prompt_tokens`` of them are the prompt,
    which the repetition penalty counts and the frequency/presence penalties do not (OpenAI's definition).
    """
    validate(repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty,
             presence_penalty=presence_penalty)
    steps: list[Callable[[np.ndarray, Sequence[int]], np.ndarray]] = []
    if repetition_penalty != 1.0:
        steps.append(lambda x, seen: apply_repetition_penalty(x, seen, repetition_penalty))
    if frequency_penalty != 0.0 or presence_penalty != 0.0:
        steps.append(lambda x, seen: apply_frequency_presence_penalties(x, seen[prompt_tokens:], frequency_penalty,
                                                                        presence_penalty))
    if not steps:
        return None

    def process(logits: np.ndarray, seen_ids: Sequence[int]) -> np.ndarray:
        for step in steps:
            logits = step(logits, seen_ids)
        return logits

    return process
