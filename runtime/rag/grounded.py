"""Answers grounded in the user's documents: retrieve, fit the sources into the context, generate, cite,
and say "Not in your documents." when the sources do not back an answer.

    answer = ask(model, index, "How many leave days do I get?")
    print(answer.text)                                   # "You get 27 days of annual leave."
    for s in answer.cited:
        print(f"[{s.n}] {s.path} (chunk {s.chunk_no}, evidence {s.evidence:.2f})")
    answer.abstained                                     # None, or why the text is NOT_IN_DOCUMENTS

The sources go into one user turn, numbered, best first, followed by the question (format_message).
What does not fit the decoder's context (with room for the reply) is dropped lowest-ranked first. With a hybrid Router the grounded turn goes through its policy, so the privacy gate sees the
retrieved text too: a source holding personal data keeps the question on the device.

Abstention (evidence.py): when no sentence of the sources is relevant to the question, the model is not
asked ("weak_retrieval"); when the answer adds nothing that a relevant sentence holds, it is replaced by
NOT_IN_DOCUMENTS ("unsupported") and kept as `draft`. `abstain=False` turns both off.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from edge_sdk.errors import ContextLengthError

from ..generation_defaults import for_copying

from . import evidence as _evidence
from .evidence import NOT_IN_DOCUMENTS, Evidence, Policy

# The turn is the numbered sources, then the question. Measured on SmolLM2-135M-Instruct int4 with the
# 30 questions of tests/rag/data (contains-match): this layout answered 15/30 at k = 1, 2 and 4; an
# instruction first ("Answer using only the sources below ... say that you do not know"), with file
# names on the sources, 12, 9 and 14; the question both before and after the sources 11, 14 and 13.
ASK = "Using the text above, answer briefly: "
DEFAULT_K = 4
DEFAULT_REPLY_TOKENS = 128


@dataclass(frozen=True)
class Source:
    """A retrieved chunk as given to the model: the answer cites it as [n]."""

    n: int
    path: str
    chunk_no: int
    score: float  # cosine similarity to the question
    text: str
    start: int  # text == document[start:end]
    end: int
    evidence: float | None = None  # how well this source backs the answer, 0..1 (evidence.py); None before one

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class GroundedPrompt:
    question: str
    user_message: str  # the numbered sources, the instruction and the question: one user turn
    sources: list[Source]
    dropped: int  # retrieved chunks left out so that the prompt and the reply fit the context
    prompt_tokens: int
    evidence: Evidence | None = None  # the sources' sentences scored against the question (prepare(evidence=True))


@dataclass
class Answer:
    text: str  # NOT_IN_DOCUMENTS when abstained
    sources: list[Source]  # what the model was given (evidence set once there is an answer)
    cited: list[Source]  # what the answer draws on (see cited_sources), each with its evidence; [] when abstained
    route: dict[str, Any] = field(default_factory=lambda: {"target": "device"})
    stats: Any = None
    abstained: str | None = None  # None (answered), "weak_retrieval" (not generated) or "unsupported"
    draft: str | None = None  # the model's own answer when it was replaced by NOT_IN_DOCUMENTS
    retrieval: float | None = None  # relevance of the best source sentence to the question, 0..1
    support: float | None = None  # relevance of the best sentence backing the answer, 0..1
    policy: Policy | None = None  # the thresholds applied (None: abstention off)

    def as_dict(self) -> dict[str, Any]:
        def src(s: Source) -> dict[str, Any]:
            out = {"n": s.n, "path": s.path, "chunk": s.chunk_no, "score": round(s.score, 4), "start": s.start,
                   "end": s.end}
            if s.evidence is not None:
                out["evidence"] = round(s.evidence, 4)
            return out

        rounded = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {"answer": self.text, "abstained": self.abstained is not None, "reason": self.abstained,
                "draft": self.draft, "cited": [src(s) for s in self.cited], "sources": [src(s) for s in self.sources],
                "evidence": {"retrieval": rounded(self.retrieval), "support": rounded(self.support),
                             "min_retrieval": self.policy and self.policy.min_retrieval,
                             "min_support": self.policy and self.policy.min_support},
                "route": self.route}


def format_message(question: str, sources: list[Source]) -> str:
    return "\n\n".join(f"[{s.n}] {s.text.strip()}" for s in sources) + f"\n\n{ASK}{question.strip()}"


def prepare(model, index, question: str, *, k: int = DEFAULT_K, reply_tokens: int = DEFAULT_REPLY_TOKENS,
            history: list[dict[str, str]] | None = None, evidence: bool = True) -> GroundedPrompt:
    """Retrieve `k` chunks for `question` and build the grounded user turn for `model`.

    reply_tokens: room kept for the answer. history: earlier messages of a conversation (they count
    against the context too). evidence: also score the sentences of the sources that fit against the
    question with the index's embedder (one embed call), for check() after generating. Raises
    ContextLengthError if even the question alone does not fit.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty: ask something")
    hits = index.search(question, k=k)
    sources = [Source(i + 1, h.path, h.chunk_no, h.score, h.text, h.start, h.end) for i, h in enumerate(hits)]
    history = list(history or [])
    budget = model.max_context - reply_tokens
    while True:
        message = format_message(question, sources) if sources else question.strip()
        tokens = len(model.encode_prompt(history + [{"role": "user", "content": message}]))
        if tokens <= budget or not sources:
            break
        sources = sources[:-1]  # the lowest-ranked source goes first
    if tokens > budget:
        raise ContextLengthError(f"the question ({tokens} tokens with the conversation) leaves no room for sources and "
                                 f"a {reply_tokens}-token answer in the model's {model.max_context}-token context; "
                                 "start a new conversation or ask a shorter question")
    scored = _evidence.gather(question, sources, index.embedder) if evidence else None
    return GroundedPrompt(question, message, sources, len(hits) - len(sources), tokens, scored)


_MARK = re.compile(r"\[(\d{1,3})\]")
_WORD = re.compile(r"\w+")
_STOP = frozenset("""a an and are as at be by can do does for from has have how i if in is it its of on or that the their
there this to was were what when where which who why will with you your not no yes source sources answer question
know""".split())


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) > 2 or w.isdigit())}


def cited_sources(answer_text: str, sources: list[Source]) -> list[Source]:
    """The sources an answer draws on: those it cites as [n]; if it cites none (small models often
    don't), those sharing the most content words with it - numbers and names weigh as much as any
    word, function words not at all. Empty when the answer shares nothing with any source."""
    by_n = {s.n: s for s in sources}
    marked = [by_n[n] for n in dict.fromkeys(int(m) for m in _MARK.findall(answer_text)) if n in by_n]
    if marked:
        return marked
    words = _content_words(answer_text)
    overlap = [len(words & _content_words(s.text)) for s in sources]
    best = max(overlap, default=0)
    return [s for s, o in zip(sources, overlap) if best and o == best]


def _policy(abstain: bool | Policy | None) -> Policy | None:
    if isinstance(abstain, Policy):
        return abstain
    if abstain is None or isinstance(abstain, bool):
        return Policy() if abstain else None
    raise TypeError(f"abstain must be True, False or an evidence.Policy, got {type(abstain).__name__}")


def before_generating(grounded: GroundedPrompt, abstain: bool | Policy = True) -> Answer | None:
    """The NOT_IN_DOCUMENTS answer when retrieval is too weak to ask the model at all; None otherwise."""
    policy = _policy(abstain)
    if policy is None or grounded.evidence is None:
        return None
    retrieval = grounded.evidence.retrieval
    if _evidence.decide(retrieval, None, policy) is None:
        return None
    return Answer(NOT_IN_DOCUMENTS, list(grounded.sources), [], abstained="weak_retrieval", retrieval=retrieval,
                  policy=policy)


def after_generating(grounded: GroundedPrompt, text: str, abstain: bool | Policy = True, *,
                     route: dict[str, Any] | None = None, stats: Any = None) -> Answer:
    """The Answer for `text`, generated from `grounded`: its citations with their evidence and, unless
    `abstain` is False, NOT_IN_DOCUMENTS (the text kept as `draft`) when no relevant sentence backs it."""
    policy = _policy(abstain)
    text = text.strip()
    route = route or {"target": "device"}
    if grounded.evidence is None:  # prepared without evidence: nothing to judge
        return Answer(text, list(grounded.sources), cited_sources(text, grounded.sources), route, stats)
    support, per_source = grounded.evidence.support(text)
    sources = [replace(s, evidence=per_source.get(s.n, 0.0)) for s in grounded.sources]
    retrieval = grounded.evidence.retrieval
    reason = _evidence.decide(retrieval, support, policy) if policy is not None else None
    if reason is not None:
        return Answer(NOT_IN_DOCUMENTS, sources, [], route, stats, abstained=reason, draft=text, retrieval=retrieval,
                      support=support, policy=policy)
    return Answer(text, sources, cited_sources(text, sources), route, stats, retrieval=retrieval, support=support,
                  policy=policy)


def ask(model, index, question: str, *, k: int = DEFAULT_K, router=None, allow_cloud_pii: bool = False,
        abstain: bool | Policy = True, **generation) -> Answer:
    """Answer `question` from the documents in `index` with `model` (a decoder), citing the sources.

    abstain: True (the default thresholds), an evidence.Policy, or False: answer NOT_IN_DOCUMENTS, with
    `answer.abstained` saying why, when no source sentence is relevant to the question (the model is not
    asked) or when none backs the model's answer (kept as `answer.draft`).
    router: a hybrid Router (edge_sdk.hybrid) to route the grounded turn by its policy; its privacy
    gate then applies to the retrieved text as well as to the question.
    generation: max_new_tokens, temperature, ... as for Model.generate.
    """
    policy = _policy(abstain)
    reply = int(generation.get("max_new_tokens") or DEFAULT_REPLY_TOKENS)
    grounded = prepare(model, index, question, k=k, reply_tokens=reply)
    early = before_generating(grounded, policy or False)
    if early is not None:
        return early
    generation.setdefault("max_new_tokens", reply)
    # A grounded answer copies from its passages: no penalty unless asked (the abstention thresholds and the
    # figures of docs/rag.md were measured so).
    generation = for_copying(generation)
    messages = [{"role": "user", "content": grounded.user_message}]
    if router is not None:
        routed = router.generate(model, messages, allow_cloud_pii=allow_cloud_pii, **generation)
        text, route, stats = routed.text, routed.route, None
    else:
        text, route = model.generate(messages, **generation), {"target": "device"}
        stats = model.last_stats
    return after_generating(grounded, text, policy or False, route=route, stats=stats)
