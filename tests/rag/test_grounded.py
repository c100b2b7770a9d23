"""Grounded answers: the prompt fits the context (lowest-ranked sources dropped first), citations, and the
hybrid router's privacy gate over retrieved text. On the tiny random decoder and the fake embedder; the
real models answer from documents in tests/e2e/test_rag.py."""
from __future__ import annotations

import pytest

import edge_sdk
from edge_sdk.errors import ContextLengthError
from edge_sdk.hybrid import Router
from edge_sdk.rag import Index, Source, ask, cited_sources, prepare

pytest.importorskip("torch")  # the tiny decoder bundle is exported on the fly

ROOMS = "amber birch cobalt dune ember fjord garnet heron indigo juniper kestrel lotus".split()
PARAGRAPHS = [f"The door code of the {name} room is {1000 + i}. " + "Filler words about the building. " * 2
              for i, name in enumerate(ROOMS)]


@pytest.fixture
def index(tmp_path, embedder):
    doc = tmp_path / "building.md"
    doc.write_text("\n\n".join(PARAGRAPHS), encoding="utf-8")
    with Index.open(tmp_path / "x.index", embedder, create=True, chunk_tokens=30, overlap_tokens=0) as idx:
        assert idx.add([doc]).ok
        yield idx


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny random decoder with a 1024-token context: its small vocabulary spends ~4 tokens a word."""
    from edge_sdk.exporters.testing import make_tiny_bundle

    return edge_sdk.load(make_tiny_bundle(tmp_path_factory.mktemp("tiny1k") / "bundle", max_context=1024))


def test_prepare_numbers_sources_best_first_and_fits_the_context(model, index):
    g = prepare(model, index, "What is the door code of the heron room?", k=4, reply_tokens=16)
    assert [s.n for s in g.sources] == list(range(1, len(g.sources) + 1))
    scores = [s.score for s in g.sources]
    assert scores == sorted(scores, reverse=True) and "1007" in g.sources[0].text
    assert g.prompt_tokens == len(model.encode_prompt([{"role": "user", "content": g.user_message}]))
    assert g.prompt_tokens + 16 <= model.max_context
    for s in g.sources:
        assert f"[{s.n}] {s.text.strip()}" in g.user_message
    assert g.user_message.rstrip().endswith("answer briefly: What is the door code of the heron room?")


def test_sources_that_do_not_fit_are_dropped_lowest_ranked_first(model, index):
    roomy = prepare(model, index, "What is the code for room 7?", k=8, reply_tokens=8)
    tight = prepare(model, index, "What is the code for room 7?", k=8, reply_tokens=model.max_context - 400)
    assert tight.dropped > roomy.dropped >= 0 and tight.sources
    assert tight.sources == roomy.sources[:len(tight.sources)]  # the best ones stay
    assert tight.prompt_tokens <= 400


def test_a_question_that_cannot_fit_is_a_clear_error(model, index):
    with pytest.raises(ContextLengthError, match="no room"):
        prepare(model, index, "room " * 1200, k=2, reply_tokens=16)
    with pytest.raises(ValueError, match="empty"):
        prepare(model, index, "  ", k=2)


def _src(n, text):
    return Source(n, f"/docs/{n}.md", 0, 0.5, text, 0, len(text))


def test_citations_by_marker_then_by_shared_words():
    sources = [_src(1, "The boiler is in the basement."), _src(2, "The code for room 7 is 1007."),
               _src(3, "Room 9 has the printer.")]
    assert cited_sources("It is 1007 [2], see also [3] and [9].", sources) == [sources[1], sources[2]]
    assert cited_sources("The code is 1007.", sources) == [sources[1]]
    assert cited_sources("I do not know.", sources) == []


def test_ask_returns_the_answer_with_its_sources(model, index):
    answer = ask(model, index, "What is the code for room 3?", k=3, max_new_tokens=8, abstain=False)
    assert answer.sources and answer.route == {"target": "device"}
    assert answer.stats.new_tokens <= 8
    assert set(answer.as_dict()) == {"answer", "abstained", "reason", "draft", "evidence", "cited", "sources", "route"}
    assert all(c in answer.sources for c in answer.cited)
    assert all(s.evidence is not None for s in answer.sources) and answer.abstained is None
    # The random decoder's words are in no source: with abstention on, that is "Not in your documents."
    judged = ask(model, index, "What is the code for room 3?", k=3, max_new_tokens=8)
    assert judged.abstained == "unsupported" and judged.text == "Not in your documents." and judged.draft == answer.text


def test_the_privacy_gate_sees_retrieved_text(model, tmp_path, embedder):
    """cloud-first would send the grounded turn to the fallback; a source with an e-mail address keeps it on
    the device (reason personal_data), although the question itself holds no personal data."""
    doc = tmp_path / "contacts.md"
    doc.write_text("The facilities manager for room 5 is reachable at jane.doe@example.com on weekdays.\n")
    router = Router("cloud-first", fallback_url="http://127.0.0.1:9/v1", timeout=1, retries=0)
    with Index.open(tmp_path / "c.index", embedder, create=True) as idx:
        idx.add([doc])
        private = ask(model, idx, "Who manages room 5?", router=router, max_new_tokens=4, abstain=False)
    assert private.route["target"] == "device" and private.route["reason"] == "personal_data"
    doc.write_text("The facilities manager for room 5 works on weekdays.\n")
    with Index.open(tmp_path / "c.index", embedder) as idx:
        idx.add([doc])
        public = ask(model, idx, "Who manages room 5?", router=router, max_new_tokens=4, abstain=False)
    # Nothing personal: the fallback was tried (and is down), so the device answered, marked degraded.
    assert public.route["reason"] == "fallback_failed" and public.route["degraded"] is True


def test_a_grounded_answer_has_no_repetition_penalty_unless_asked(model, index, monkeypatch):
    """The answer copies from its passages, which the default penalty (1.15) punishes, and the abstention
    thresholds were measured without it: ask() generates without one, and keeps a penalty the caller sets."""
    assert model.generation_defaults["repetition_penalty"] > 1.0  # what a plain generate() would use
    seen = []
    real = model.generate
    monkeypatch.setattr(model, "generate", lambda messages, **kw: seen.append(kw) or real(messages, **kw))
    ask(model, index, "What is the code for room 3?", k=3, max_new_tokens=8, abstain=False)
    ask(model, index, "What is the code for room 3?", k=3, max_new_tokens=8, abstain=False, repetition_penalty=1.3)
    assert [kw["repetition_penalty"] for kw in seen] == [1.0, 1.3]
