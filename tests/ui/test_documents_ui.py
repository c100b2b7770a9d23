"""The Docs panel: an index of the user's files, built on the device, and answers that name their sources."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_sdk.rag import Policy

pytestmark = pytest.mark.ui

DATA = Path(__file__).resolve().parents[1] / "rag" / "data"


@pytest.fixture(scope="module")
def tiny_bundle_1k(tmp_path_factory):
    """The tiny random decoder with room for a few retrieved excerpts (the shared one has 256 tokens)."""
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("tiny1k") / "bundle", "llama", max_context=1024)


def test_documents_panel_indexes_files_and_answers_name_their_sources(tiny_bundle_1k, run_scenario, tmp_path):
    extra = tmp_path / "notes.md"
    extra.write_text("# Notes\n\nThe Vellmoor allotments open at 07:15 on Sundays.\n", encoding="utf-8")
    index = tmp_path / "data" / "documents.index"
    res = run_scenario("scenario_documents.py", timeout=300, UI_BUNDLE=tiny_bundle_1k, UI_EMBEDDER="fake",
                       UI_DOCS=DATA / "docs", UI_BAD=DATA / "bad", UI_EXTRA=extra, UI_INDEX=index,
                       UI_SCREENSHOT=tmp_path / "docs.png")
    assert res["ready"]
    n_docs = len(list((DATA / "docs").iterdir()))

    for step in ("no_embedder_switch", "no_embedder_add"):  # nothing can work yet: it says what is missing
        assert "Choose an embedder bundle first" in res[step]["status"], res[step]
        assert "edge-sdk export all-minilm-l6-v2" in res[step]["status"]
    assert res["no_embedder_switch"]["problem"] and not res["no_embedder_switch"]["use_documents"]
    assert res["no_embedder_switch"]["switch"] is False  # the switch went back off
    assert not res["no_embedder_add"]["chooser_open"]

    folder = res["folder"]  # the whole folder, indexed on the documents thread while the UI kept drawing
    assert not folder["problem"], folder
    assert folder["status"].startswith(f"Added {n_docs} files.") and "documents.index" in folder["status"]
    assert len(folder["rows"]) == n_docs and folder["rows_on_screen"] == n_docs
    assert any(r.startswith("vellmoor_history.txt  ·  ") and r.endswith(" chunks") for r in folder["rows"]), folder
    # Progress arrives while the files are indexed (on a loaded host the updates coalesce: 2 of 7 were seen, so
    # at least two, not a rate; indexing on the UI thread would show none before "Added").
    assert len(folder["progress"]) >= 2 and all(f" of {n_docs}: " in s for s in folder["progress"]), folder["progress"]
    # Frames drawn while the add was running (8 on a quiet host, and progress shown on them): indexing on the
    # UI thread would draw none. Not a frame-rate bound: on a loaded host updates coalesce into fewer frames.
    assert folder["frames_while_indexing"] >= 3
    assert index.is_file()

    bad = res["bad"]  # unreadable files are named with the reason; the good file beside them is indexed
    assert bad["problem"] and bad["status"].startswith("Added 1 file; 2 could not be read:"), bad["status"]
    assert "image.png" in bad["status"] and "latin1.txt" in bad["status"]
    assert len(bad["rows"]) == n_docs + 1 and any(r.startswith("notes.md") for r in bad["rows"])

    on = res["switched_on"]
    assert on["use_documents"] and on["docs_button"] == on["send_button"]  # the Docs button turns the accent blue

    g = res["grounded"]
    question = "Who founded Vellmoor?"
    assert [b["role"] for b in g["bubbles"]] == ["user", "assistant"] and not g["banner"]
    assert g["bubbles"][0]["text"] == question                  # the bubble shows what the user typed...
    sent = g["history"][-2]
    assert sent["role"] == "user" and sent["content"] != question  # ...the model was given the excerpts too
    assert question in sent["content"] and "Marta Quell" in sent["content"]
    assert "vellmoor_history.txt" in [name for name, _chunk, _n in g["sources"]], g["sources"]
    caption = g["bubbles"][1]["route"]  # abstention off for this turn: the sources, each with its evidence
    assert caption.startswith("Sources: [") and "vellmoor_history.txt, chunk " in caption and ", evidence " in caption
    assert any(s == "Searching your documents…" for s in g["statuses"]), g["statuses"]
    # An answer from the excerpts copies from them: as rag.ask, without the chat's repetition penalty (the user
    # chose none), which the plain turn below keeps.
    assert g["app_penalty"] != 1.0 and g["penalty"] == 1.0, g
    follow = res["follow_up"]  # the second question fits beside the first (fewer excerpts if need be)
    assert [b["role"] for b in follow["bubbles"]] == ["user", "assistant"] * 2 and not follow["banner"], follow
    # Abstention on (the default), in a new chat: the random decoder's reply is backed by no relevant excerpt, or
    # none was close enough to ask it; either way the bubble says so and the caption says why and what was closest.
    ab = res["abstained"]
    reply, caption = ab["bubbles"][1]["text"], ab["bubbles"][1]["route"]
    assert reply == "Not in your documents." and not ab["banner"], ab["bubbles"]
    assert (caption.startswith("Your documents do not back the model's answer (evidence ")
            or caption.startswith("Nothing in your documents is close to this question (best match ")), caption
    assert f"needs {Policy().min_support:.2f}" in caption and "vellmoor_history.txt, chunk " in caption, caption
    assert "vellmoor_history.txt" in [name for name, *_ in ab["sources"]]
    assert follow["tokens_used"] <= follow["max_context"]
    assert Path(res["screenshot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    plain = res["plain"]  # switched off: sent as typed, nothing under the reply
    assert plain["history"][-2] == {"role": "user", "content": question}
    assert plain["bubbles"][1]["route"] == "" and plain["docs_button"] != on["docs_button"]
    assert plain["penalty"] == g["app_penalty"]
