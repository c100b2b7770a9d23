"""When an answer from the documents should be "Not in your documents.": how well the sources back it.

    ev = evidence.gather(question, sources, embedder)        # before generating: embeds the sources' sentences
    ev.retrieval                                              # 0..1: the best sentence for the question
    support, per_source = ev.support(answer_text)             # after: the sentence that backs the answer
    reason = evidence.decide(ev.retrieval, support, Policy()) # None, "weak_retrieval" or "unsupported"

The unit of evidence is a sentence of a retrieved chunk, and its *relevance* to the question is the mean of
  - its embedding similarity to the question on the embedder's own scale (0 = what unrelated texts score,
    1 = what a passage that answers the question scores; measured per embedder on background.py), and
  - the share of the question's distinctive words it holds (each word weighted by how few of the
    retrieved sentences contain it, so a word no source has - "calories", "e-mail" - weighs most); the
    words of its file's name count as held (in brindlecove_handbook.md, "The Chief People Officer is
    Dorian Achterberg." answers a question about Brindlecove's).
Retrieval is weak when no sentence is relevant. An answer is supported when a relevant sentence holds a
word the answer adds to the question (a name, a number, a term): a 135M model that cannot find the answer
still answers, usually by copying a figure from a neighbouring sentence ("costs 1,350 euros" from "draws
1,350 watts"), and that sentence is not about the question. Measured on the 30 answerable and 42
unanswerable questions of tests/rag/data: neither a token overlap between the answer and its sources (the
copied figure is there) nor the answer's embedding similarity to them separates the two; this does
(benchmarks/rag_abstention.py, docs/rag.md).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .background import PAIRS

NOT_IN_DOCUMENTS = "Not in your documents."

# Chosen on the calibration half of tests/rag/data's 55 answerable and 67 unanswerable questions, with the
# int4 and fp32 SmolLM2-135M answers, as the lowest value that abstains on the most unanswerable questions
# while no correct answer is lost (benchmarks/rag_abstention.py; figures in docs/rag.md). One value for both:
# support is the relevance of one of the sentences whose best is the retrieval score, so a question whose
# best sentence falls short could not be supported; the retrieval check spares generating that answer.
MIN_RETRIEVAL = 0.65
MIN_SUPPORT = 0.65


@dataclass(frozen=True)
class Policy:
    """When to say NOT_IN_DOCUMENTS. Both scores are relevances in [0, 1] (see the module docstring):
    retrieval below `min_retrieval` skips generating; support below `min_support` replaces the answer."""

    min_retrieval: float = MIN_RETRIEVAL
    min_support: float = MIN_SUPPORT

    def __post_init__(self):
        for name in ("min_retrieval", "min_support"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def decide(retrieval: float, support: float | None, policy: Policy) -> str | None:
    """Why the answer is NOT_IN_DOCUMENTS ("weak_retrieval", "unsupported"), or None to keep it.
    `support` is None before an answer exists (only retrieval is judged then)."""
    if retrieval < policy.min_retrieval:
        return "weak_retrieval"
    if support is not None and support < policy.min_support:
        return "unsupported"
    return None


# -- the embedder's scale ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """An embedder's cosines between a question and a passage: `unrelated` is the mean over pairs on
    different topics, `related` over pairs where the passage answers the question."""

    unrelated: float
    related: float

    def __call__(self, cosine):
        """Cosine(s) mapped so that 0 = like unrelated texts, 1 = like an answering passage (clipped)."""
        return np.clip((np.asarray(cosine, np.float64) - self.unrelated) / (self.related - self.unrelated), 0.0, 1.0)


_SCALES: dict[str, Scale] = {}  # by embedder fingerprint: measured once per process


def scale_of(embedder) -> Scale:
    """The embedder's Scale, measured on the fixed background pairs (48 short texts, one embed call)."""
    key = str((getattr(embedder, "identity", None) or {}).get("fingerprint") or id(embedder))
    if key not in _SCALES:
        vectors = _unit(embedder.embed([q for q, _ in PAIRS] + [p for _, p in PAIRS]))
        n = len(PAIRS)
        cos = vectors[:n] @ vectors[n:].T  # [questions, passages]
        related = float(np.diag(cos).mean())
        unrelated = float(cos[~np.eye(n, dtype=bool)].mean())
        if not related > unrelated:  # an embedder that cannot tell these apart cannot judge evidence
            raise ValueError(f"the embedder scores unrelated texts ({unrelated:.3f}) as high as related ones "
                             f"({related:.3f}); it cannot be used to judge evidence")
        _SCALES[key] = Scale(unrelated, related)
    return _SCALES[key]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


# -- words and sentences -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
# Function words, and the words that shape a question rather than name its subject.
STOP = frozenset("""a an and are as at be by can do does did for from has have had how i if in into is it its of on or
that the their there this to was were what when where which who whom whose why will with would you your my me not
no yes source sources answer question text know many much long often big large""".split())
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0](?=\d{3}\b)")


def _stem(word: str) -> str:
    """A crude English stem, enough to match "closes"/"close", "arrived"/"arrive", "costs"/"cost"."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def content_words(text: str) -> set[str]:
    """Stemmed words that carry meaning: no function words, numbers whole ("1,750" = "1750")."""
    text = _THOUSANDS.sub("", text.lower().replace("\u2019", "'"))
    return {_stem(w) for w in _WORD.findall(text) if w not in STOP and (len(w) > 2 or w.isdigit())}


# A sentence ends at . ! ? before a space, unless the word before the stop is a title or an initial
# ("Dr. Ingrid Solvang", "J. Smith") or a table cell goes on; a line break always ends one (lists, table rows,
# headings).
_SENTENCE_END = re.compile(r"(?<!\b[A-Z]\.)(?<!\b(?:Dr|Mr|Ms|Mt|St|No|vs|Jr|Sr)\.)(?<!\bMrs\.)(?<!\bProf\.)(?<!\be\.g\.)(?<!\bi\.e\.)"
                           r"(?<=[.!?])\s+(?!\|)|\s*\n\s*")


def sentences(text: str) -> list[str]:
    """`text` cut into sentences and lines, stripped; fragments of under 4 characters dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= 4]


# -- evidence --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """The sentences of a grounded prompt's sources, each with its relevance to the question."""

    question_words: frozenset[str]
    sentences: tuple[tuple[int, str, float, frozenset[str]], ...]  # (source n, text, relevance, content words)

    @property
    def retrieval(self) -> float:
        """The relevance of the best sentence: how well the sources match the question at all."""
        return max((rel for _, _, rel, _ in self.sentences), default=0.0)

    def support(self, answer: str) -> tuple[float, dict[int, float]]:
        """(support, {source n: evidence}): the relevance of the best sentence holding a word the answer
        adds to the question, overall and per source (0 where none does; 0 for an answer that adds nothing)."""
        new = content_words(answer) - self.question_words
        per_source: dict[int, float] = {}
        for n, _, rel, words in self.sentences:
            if new & words:
                per_source[n] = max(per_source.get(n, 0.0), rel)
        return max(per_source.values(), default=0.0), per_source


def gather(question: str, sources: Sequence, embedder, *, scale: Scale | None = None) -> Evidence:
    """Relevance of every sentence of `sources` (objects with `.n`, `.text` and `.path`) to `question`, with
    one embed call of the question and the sentences."""
    qwords = frozenset(content_words(question))
    units = [(s, text) for s in sources for text in sentences(s.text)]
    if not units:
        return Evidence(qwords, ())
    scale = scale or scale_of(embedder)
    vectors = _unit(embedder.embed([question] + [text for _, text in units]))
    similarity = scale(vectors[1:] @ vectors[0])  # [sentences], 0..1
    words = [frozenset(content_words(text)) for _, text in units]
    named = {s.n: content_words(_file_stem(getattr(s, "path", ""))) for s in sources}
    coverage = _coverage(qwords, [w | named[s.n] for (s, _), w in zip(units, words)])
    return Evidence(qwords, tuple((s.n, text, float(0.5 * sim + 0.5 * cov), w)
                                  for (s, text), sim, cov, w in zip(units, similarity, coverage, words)))


def _file_stem(path: str) -> str:
    """"brindlecove_handbook" of ".../brindlecove_handbook.md", separators as spaces."""
    name = re.split(r"[\\/]", str(path))[-1]
    return re.sub(r"[_\-.]+", " ", name.rsplit(".", 1)[0] if "." in name else name)


def _coverage(question: frozenset[str], sentences: list[frozenset[str]]) -> list[float]:
    """The share of the question's words each sentence holds, a word weighing log((N + 1) / (df + 0.5)) for
    N sentences of which df hold it: words every source repeats (the product's name) weigh little, words
    no source holds weigh most."""
    if not question:
        return [0.0] * len(sentences)
    n = len(sentences)
    weight = {w: math.log((n + 1) / (sum(w in s for s in sentences) + 0.5)) for w in question}
    total = sum(weight.values())
    return [sum(weight[w] for w in question & s) / total for s in sentences]
