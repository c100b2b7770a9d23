"""How sure the device model was of its answer, from the logits it computed anyway.

`Confidence.observe(logits, token)` is called by the sampler for every generated token (the end-of-
sequence token included). Per token it keeps the log-probability of the chosen token (and, with
`detail`, the top-1 margin and the entropy); `score` sums them up as the geometric mean of the chosen
tokens' probabilities, exp(mean log p), in (0, 1]. Which signal predicts a wrong answer best was measured on a question set
with known answers (docs/server.md): the router escalates when the score is below its threshold.
"""
from __future__ import annotations

import math

import numpy as np


class Confidence:
    def __init__(self, detail: bool = False):
        """detail: also keep each token's top-1 margin and entropy, for comparing signals
        (benchmarks/router_eval.py). They cost ~1.8 ms a token over a 49k vocabulary, on the decode path;
        the score alone ~0.05 ms."""
        self.detail = detail
        self.logp: list[float] = []  # log-probability of each chosen token
        self.margin: list[float] = []  # p(top-1) - p(top-2) (with detail)
        self.entropy: list[float] = []  # nats (with detail)

    def observe(self, logits: np.ndarray, token: int) -> None:
        x = np.asarray(logits)
        top = x.max()
        e = np.exp(x - top)  # in the logits' own dtype; summed in float64
        z = float(e.sum(dtype=np.float64))
        self.logp.append(float(x[token] - top) - math.log(z))
        if self.detail:
            p = e.astype(np.float64) / z
            top2 = np.partition(p, -2)[-2:]
            self.margin.append(float(top2[1] - top2[0]))
            self.entropy.append(float(-(p[p > 0] * np.log(p[p > 0])).sum()))

    @property
    def tokens(self) -> int:
        return len(self.logp)

    @property
    def score(self) -> float:
        """exp(mean log p(chosen token)); 1.0 for an empty answer (nothing was uncertain)."""
        return math.exp(sum(self.logp) / len(self.logp)) if self.logp else 1.0

    def signals(self) -> dict[str, float]:
        if not self.detail:
            raise ValueError("signals() needs the per-token detail: use Confidence(detail=True)")
        if not self.logp:
            return {"score": 1.0, "min_p": 1.0, "mean_margin": 1.0, "mean_entropy": 0.0}
        return {"score": self.score, "min_p": math.exp(min(self.logp)),
                "mean_margin": sum(self.margin) / len(self.margin),
                "mean_entropy": sum(self.entropy) / len(self.entropy)}
