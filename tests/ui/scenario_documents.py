"""Scenario: the Docs panel, as a user would use it: no embedder yet, then an embedder, a folder of documents,
two unreadable files beside a good one, "answer from my documents", a question, and the same question without.

Env: UI_BUNDLE (decoder bundle), UI_DOCS (folder of documents), UI_BAD (folder holding image.png and
latin1.txt), UI_EXTRA (one more good file, added together with the bad ones), UI_INDEX (index file to create),
UI_EMBEDDER (an embedder bundle folder, or "fake": tests/rag/fake_embedder.py's bag of words),
UI_QUESTION, UI_SCREENSHOT and UI_SCREENSHOT_PANEL (optional PNG paths: the chat, the panel).

The RAG API is edge_sdk.rag's (Index, prepare, before_generating, after_generating); only the embedder may be
a stand-in.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import UI, emit, press, run  # noqa: E402

FAKE_EMBEDDER = "fake"


def main():
    import edge_sdk
    from kivy.core.window import Window
    from mobile_demo.widgets import DocumentChooser, DocumentsPanel

    embedder_dir = os.environ["UI_EMBEDDER"]

    def loader(path):
        if path == FAKE_EMBEDDER:
            from tests.rag.fake_embedder import FakeEmbedder

            return FakeEmbedder(dim=1024, delay=0.02)  # few hash collisions; slow enough to span many frames
        return edge_sdk.load(path)

    ui = UI(bundle_path=os.environ["UI_BUNDLE"], loader=loader, index_path=os.environ["UI_INDEX"])
    app = ui.app
    res = {"ready": ui.wait_ready(120)}
    app.max_new_tokens = int(os.environ.get("UI_MAX_NEW_TOKENS", "12"))
    app.retrieval_k = 2
    ids = ui.ids()

    def modal(cls):
        return next((w for w in Window.children if isinstance(w, cls)), None)

    press(ids.docs_button)
    ui.pump(lambda: modal(DocumentsPanel) is not None, 10)
    panel = modal(DocumentsPanel)
    p = panel.ids

    # 1. No embedder chosen: the switch and "Add files…" say what is missing, and nothing opens.
    p.use_documents.active = True
    ui.pump(timeout=0.2)
    res["no_embedder_switch"] = {"status": app.documents_status, "problem": app.documents_problem,
                                 "use_documents": app.use_documents, "switch": p.use_documents.active}
    press(p.add_button)
    ui.pump(timeout=0.3)
    res["no_embedder_add"] = {"status": app.documents_status, "chooser_open": modal(DocumentChooser) is not None}

    # 2. An embedder, then a whole folder: "Add files…", nothing picked, "Add" takes the folder shown.
    p.embedder.text = embedder_dir
    busy_frames = []  # frames drawn while each add was running: none if indexing blocked the UI thread

    def add_via_chooser(folder, selection=()):
        press(p.add_button)
        ui.pump(lambda: modal(DocumentChooser) is not None, 10)
        chooser = modal(DocumentChooser)
        chooser.ids.chooser.path = folder
        chooser.ids.chooser.selection = list(selection)
        press(chooser.ids.add_chosen_button)
        ui.pump(lambda: app.documents_busy, 5)
        statuses = set()
        frames0 = ui.frames
        deadline = time.perf_counter() + 120
        while app.documents_busy and time.perf_counter() < deadline:
            ui.pump(timeout=0.02)
            statuses.add(app.documents_status)
        busy_frames.append(ui.frames - frames0)
        ui.pump(timeout=0.2)
        return sorted(statuses)

    res["folder"] = {"progress": [s for s in add_via_chooser(os.environ["UI_DOCS"]) if s.startswith("Indexed")], "status": app.documents_status,
                     "problem": app.documents_problem, "rows": [r["text"] for r in app.document_rows],
                     "frames_while_indexing": busy_frames[-1],
                     "rows_on_screen": len(p.files.layout_manager.children)}

    # 3. Two unreadable files and one good one, picked together: the good one is indexed, the others named.
    bad = os.environ["UI_BAD"]
    extra = os.environ["UI_EXTRA"]
    add_via_chooser(bad, [os.path.join(bad, "image.png"), os.path.join(bad, "latin1.txt"), extra])
    res["bad"] = {"status": app.documents_status, "problem": app.documents_problem,
                  "rows": [r["text"] for r in app.document_rows]}

    # 4. Answer from my documents.
    p.use_documents.active = True
    ui.pump(lambda: app.use_documents, 10)
    if os.environ.get("UI_SCREENSHOT_PANEL"):
        res["panel_screenshot"] = ui.screenshot(os.environ["UI_SCREENSHOT_PANEL"])
    res["switched_on"] = {"use_documents": app.use_documents, "docs_button": list(ids.docs_button.bg_color),
                          "send_button": list(ids.send_button.bg_color), "status": app.documents_status}
    press(p.close_button)
    ui.pump(lambda: modal(DocumentsPanel) is None, 10)

    question = os.environ.get("UI_QUESTION", "Who founded Vellmoor?")
    statuses = []
    app.bind(status_text=lambda _a, value: statuses.append(value))
    # The tiny random decoder's replies are backed by nothing: the first turn is shown as answered (abstention
    # off) to see its sources and their evidence, the follow-up as the app does by default.
    app.library.abstain = False
    ui.type_and_send(question)
    ui.wait_idle(120)
    ui.pump(timeout=0.3)
    res["grounded"] = {"bubbles": ui.bubbles(), "history": [dict(m) for m in app.chat.messages],
                       "sources": [(os.path.basename(s.path), s.chunk_no, s.n) for s in app.last_sources],
                       "statuses": statuses[:4], "banner": app.banner_text,
                       "penalty": app.worker._gen_kwargs["repetition_penalty"], "app_penalty": app.repetition_penalty}
    # A follow-up in the same chat: the excerpts are fitted into what the conversation leaves of the context.
    statuses.clear()
    ui.type_and_send(os.environ.get("UI_FOLLOW_UP", "And when did the railway reach it?"))
    ui.wait_idle(120)
    ui.pump(timeout=0.3)
    res["follow_up"] = {"bubbles": ui.bubbles(), "statuses": statuses[:2], "banner": app.banner_text,
                        "tokens_used": app.chat.tokens_used, "max_context": app.model.max_context}
    if os.environ.get("UI_SCREENSHOT"):
        res["screenshot"] = ui.screenshot(os.environ["UI_SCREENSHOT"])

    # 5. A new chat with abstention on (the default): the random decoder's reply is backed by nothing.
    press(ids.new_chat_button)
    ui.pump(lambda: not app.messages, 5)
    app.library.abstain = True
    ui.type_and_send(question)
    ui.wait_idle(120)
    ui.pump(timeout=0.3)
    res["abstained"] = {"bubbles": ui.bubbles(), "banner": app.banner_text,
                        "sources": [(os.path.basename(s.path), s.chunk_no, s.n, s.evidence) for s in app.last_sources]}

    # 6. Off again: the next message goes as typed, with no sources under the reply.
    press(ids.new_chat_button)
    ui.pump(lambda: not app.messages, 5)
    app.set_use_documents(False)
    ui.type_and_send(question)
    ui.wait_idle(120)
    ui.pump(timeout=0.3)
    res["plain"] = {"bubbles": ui.bubbles(), "history": [dict(m) for m in app.chat.messages],
                    "docs_button": list(ids.docs_button.bg_color),
                    "penalty": app.worker._gen_kwargs["repetition_penalty"]}
    ui.close()
    emit(res)


if __name__ == "__main__":
    run(main)
