"""Abstention: "Not in your documents." when retrieval is weak or the answer is not backed by the sources.

On the fake bag-of-words embedder and a scripted decoder (it returns the answer the test gives it and counts
its calls), so the decision is tested without any model. The real models are in tests/e2e/test_rag.py, the
thresholds' measurement in benchmarks/rag_abstention.py.
"""
from __future__ import annotations

import pytest

from edge_sdk.rag import NOT_IN_DOCUMENTS, Index, Policy, Source, after_generating, ask, before_generating, prepare
from edge_sdk.runtime.rag import evidence
from edge_sdk.runtime.rag.background import PAIRS

from .fake_embedder import FakeEmbedder

FLAT = """# Flat 4B

The rent for flat 4B is 850 euros a month.
Rent is paid by bank transfer on the first day of each month.
The boiler in the cellar was installed in 2019 by Harlow Heating.
Bins are collected on Tuesday mornings from the back gate.
"""
RENT = "How much is the rent for flat 4B?"
MONTHLY = "How much is the monthly rent for flat 4B?"  # "monthly" is in no source: its best sentence scores < 1
OFF_TOPIC = "Australian capital city?"  # no word in common with the flat's notes


class ScriptedModel:
    """What ask() needs of a decoder: a context size, prompt token counts, and generate() (which returns
    `reply` and counts its calls)."""

    max_context = 4096

    def __init__(self, reply: str = ""):
        self.reply, self.calls, self.last_stats = reply, 0, None

    def encode_prompt(self, messages):
        return " ".join(m["content"] for m in messages).split()

    def generate(self, messages, **kw):
        self.calls += 1
        return self.reply


@pytest.fixture
def embedder():
    return FakeEmbedder(dim=1024)  # few hash collisions: unrelated texts score near 0


@pytest.fixture
def index(tmp_path, embedder):
    doc = tmp_path / "flat.md"
    doc.write_text(FLAT, encoding="utf-8")
    with Index.open(tmp_path / "flat.index", embedder, create=True) as idx:
        assert idx.add([doc]).ok
        yield idx


def test_an_answer_taken_from_the_relevant_sentence_is_kept_with_its_evidence(index):
    model = ScriptedModel("The rent is 850 euros a month.")
    answer = ask(model, index, RENT)
    assert answer.text == "The rent is 850 euros a month." and answer.abstained is None and answer.draft is None
    assert answer.support >= Policy().min_support and answer.retrieval >= answer.support
    assert [s.evidence for s in answer.cited] == [answer.support]  # the one chunk, scored by its backing sentence
    d = answer.as_dict()
    assert d["abstained"] is False and d["reason"] is None and d["cited"][0]["evidence"] == round(answer.support, 4)
    assert d["evidence"] == {"retrieval": round(answer.retrieval, 4), "support": round(answer.support, 4),
                             "min_retrieval": Policy().min_retrieval, "min_support": Policy().min_support}


def test_a_figure_copied_from_an_unrelated_sentence_is_not_in_your_documents(index):
    """The 135M model's usual invention: the number is in the sources, but in the boiler's sentence."""
    model = ScriptedModel("It is 2019.")
    answer = ask(model, index, RENT)
    assert answer.text == NOT_IN_DOCUMENTS == "Not in your documents."
    assert answer.abstained == "unsupported" and answer.draft == "It is 2019." and answer.cited == []
    assert answer.support < Policy().min_support <= answer.retrieval
    assert answer.as_dict()["abstained"] is True and answer.as_dict()["draft"] == "It is 2019."
    # The same answer, with abstention off, is given as is (with its low evidence on the sources).
    kept = ask(model, index, RENT, abstain=False)
    assert kept.text == "It is 2019." and kept.abstained is None and kept.support == answer.support
    assert max(s.evidence for s in kept.sources) == pytest.approx(kept.support)


def test_an_answer_that_only_repeats_the_question_is_not_supported(index):
    answer = ask(ScriptedModel("The rent for flat 4B."), index, RENT)
    assert answer.abstained == "unsupported" and answer.support == 0.0


def test_a_question_nothing_matches_is_not_in_your_documents_without_asking_the_model(index):
    model = ScriptedModel("Canberra is the capital of Australia.")
    answer = ask(model, index, OFF_TOPIC)
    assert answer.text == NOT_IN_DOCUMENTS and answer.abstained == "weak_retrieval" and model.calls == 0
    assert answer.retrieval < Policy().min_retrieval and answer.draft is None and answer.support is None
    assert answer.sources  # what was closest is still there to show
    assert ask(model, index, OFF_TOPIC, abstain=False).text.startswith("Canberra")
    assert model.calls == 1


def test_the_thresholds_decide(index):
    """Each threshold, set just above or below the scores of one answer, flips the decision."""
    model = ScriptedModel("It is 2019.")
    scored = ask(model, index, MONTHLY, abstain=False)
    r, s = scored.retrieval, scored.support
    assert 0.0 < s < r < 1.0
    assert ask(model, index, MONTHLY, abstain=Policy(min_retrieval=r, min_support=s)).abstained is None
    assert ask(model, index, MONTHLY, abstain=Policy(min_retrieval=r, min_support=s + 1e-6)).abstained == "unsupported"
    assert ask(model, index, MONTHLY, abstain=Policy(r + 1e-6, min_support=0.0)).abstained == "weak_retrieval"
    with pytest.raises(ValueError, match="min_support"):
        Policy(min_support=1.5)
    with pytest.raises(TypeError, match="abstain"):
        ask(model, index, RENT, abstain="yes")


def test_the_decision_rule():
    p = Policy(min_retrieval=0.3, min_support=0.6)
    assert evidence.decide(0.29, None, p) == "weak_retrieval"
    assert evidence.decide(0.29, 0.9, p) == "weak_retrieval"  # weak retrieval wins: the model was not asked
    assert evidence.decide(0.3, None, p) is None               # before the answer only retrieval counts
    assert evidence.decide(0.9, 0.59, p) == "unsupported"
    assert evidence.decide(0.3, 0.6, p) is None                # at the threshold: answered


def test_prepare_then_judge_is_what_ask_does(index):
    """The chat app prepares, streams, then judges: the same decisions as ask()."""
    grounded = prepare(ScriptedModel(), index, RENT)
    assert before_generating(grounded) is None and grounded.evidence.retrieval > 0
    good, bad = after_generating(grounded, " The rent is 850 euros. "), after_generating(grounded, "It is 2019.")
    assert good.text == "The rent is 850 euros." and not good.abstained
    assert bad.text == NOT_IN_DOCUMENTS and bad.abstained == "unsupported"
    assert after_generating(grounded, "It is 2019.", abstain=False).text == "It is 2019."
    off = prepare(ScriptedModel(), index, OFF_TOPIC)
    assert before_generating(off).abstained == "weak_retrieval" and before_generating(off, False) is None


def test_the_embedder_scale_is_measured_once_and_maps_unrelated_to_zero(embedder):
    scale = evidence.scale_of(embedder)
    calls = embedder.calls
    assert evidence.scale_of(embedder) is scale and embedder.calls == calls  # cached by fingerprint
    assert scale.related > scale.unrelated
    assert scale(scale.unrelated) == 0.0 and scale(scale.related) == 1.0 and scale(-1.0) == 0.0 and scale(1.0) == 1.0
    # Measured on the fixed background pairs: the matching passage of each question scores above the others.
    import numpy as np

    v = embedder.embed([q for q, _ in PAIRS] + [p for _, p in PAIRS])
    cos = v[:len(PAIRS)] @ v[len(PAIRS):].T
    assert scale.related == pytest.approx(float(np.diag(cos).mean()), abs=1e-6)


def test_sentences_and_content_words():
    assert evidence.sentences("The officer is Dr. Ingrid Solvang. J. Krogh helps, e.g. in fog.\n| E-417 | The tank is "
                              "empty. | Refill |\n\nNext line") == [
        "The officer is Dr. Ingrid Solvang.", "J. Krogh helps, e.g. in fog.", "| E-417 | The tank is empty. | Refill |",
        "Next line"]
    assert evidence.content_words("The office closes at 17:45; it costs 1,750 euros. How many arrived?") == {
        "offic", "clos", "17", "45", "cost", "1750", "euro", "arriv"}
    assert evidence.content_words("close costs arrive") == evidence.content_words("closes cost arrived")


def test_evidence_per_source_is_the_best_backing_sentence(embedder):
    sources = [Source(1, "/d/a.md", 0, 0.5, "The rent for flat 4B is 850 euros a month.", 0, 10),
               Source(2, "/d/b.md", 0, 0.4, "The boiler was installed in 2019.", 0, 10)]
    ev = evidence.gather(RENT, sources, embedder)
    support, per_source = ev.support("It is 850 euros, paid since 2019.")
    assert set(per_source) == {1, 2} and per_source[1] > per_source[2] and support == per_source[1]
    assert ev.support("Rent for flat 4B.") == (0.0, {})
    assert evidence.gather(RENT, [], embedder).retrieval == 0.0
