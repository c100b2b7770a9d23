"""The user's documents for the chat app: one index file, the embedder it needs, and the calls on them.

Embedding a file takes seconds on a phone, and a search embeds the question, so nothing here runs on
the UI thread. Everything that touches the index runs on *one* background thread, in the order it was
asked for: an index holds a database connection and an embedder session that are not meant to be
shared between threads, and "open, then add, then search" must happen in that order anyway.

Like worker.py this module does not import Kivy: the UI passes ``schedule`` (``Clock.schedule_once``),
and every result comes back as ``callback(value, dt)`` on the main thread. The RAG API
(``edge_sdk.rag``: ``Index``, ``prepare``, ``before_generating``, ``after_generating``) is imported on first
use, or injected. Judging a reply against its sources (``judge``) is text work on scores ``prepare`` already
computed, so it runs on the main thread.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class FileRow:
    """One indexed file, as the documents panel lists it."""

    path: str
    chunks: int

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class AddResult:
    """What adding files did (from the index's AddReport), and the index's files after it."""

    added: list[str] = field(default_factory=list)       # new or changed files, now indexed
    unchanged: list[str] = field(default_factory=list)   # indexed before, same bytes: not embedded again
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why): the others were still indexed
    files: list[FileRow] = field(default_factory=list)


class NoEmbedderError(Exception):
    """The documents were used before an embedder bundle was chosen."""


def default_rag():
    from edge_sdk import rag

    return rag


class Library:
    """The app's document index. Every method returns at once; results arrive through callbacks.

    rag: the module providing ``Index``, ``prepare``, ``before_generating`` and ``after_generating`` (default
    ``edge_sdk.rag``). loader: loads a bundle folder (``edge_sdk.load``); used for the embedder.
    abstain: answer "Not in your documents." when the excerpts do not back a reply (``edge_sdk.rag.ask``'s rule).
    """

    def __init__(self, *, schedule: Callable, loader: Callable[[str], Any], rag=None, abstain: bool = True):
        self._schedule = schedule
        self._loader = loader
        self._rag = rag
        self.abstain = abstain
        self.embedder = None
        self.embedder_path = ""
        self.index = None
        self.index_path = ""
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="edge-sdk-documents", daemon=True)
        self._thread.start()

    @property
    def rag(self):
        if self._rag is None:
            self._rag = default_rag()
        return self._rag

    @property
    def is_open(self) -> bool:
        return self.index is not None

    # -- jobs (each runs on the documents thread) -------------------------------------------------

    def open(self, index_path: str, embedder_path: str, *, on_done: Callable, on_error: Callable) -> None:
        """Load the embedder (unless it is the one already loaded) and open or create the index file.
        ``on_done(files: list[FileRow], dt)``."""
        self._submit(partial(self._open, str(index_path), str(embedder_path)), on_done, on_error)

    def add(self, paths: list[str], *, on_progress: Callable, on_done: Callable, on_error: Callable) -> None:
        """Index files (and the documents in folders); an unreadable file is reported, the others indexed.
        ``on_progress((done, total, name), dt)`` after each file; ``on_done(result: AddResult, dt)``."""
        self._submit(partial(self._add, [str(p) for p in paths], on_progress), on_done, on_error)

    def prepare(self, model, question: str, *, k: int, history: list, reply_tokens: int, on_done: Callable,
                on_error: Callable) -> None:
        """Retrieve for `question` and fit the excerpts into what the conversation (`history`) leaves of the
        context: ``on_done(grounded_prompt, dt)`` (see ``edge_sdk.rag.prepare``)."""
        self._submit(partial(self._prepare, model, question, k, list(history), int(reply_tokens)), on_done, on_error)

    def skip(self, grounded):
        """The "Not in your documents." answer when no excerpt is close enough to the question to ask the
        model at all; None when it should answer."""
        return self.rag.before_generating(grounded, self.abstain)

    def judge(self, grounded, answer_text: str):
        """The answer for a reply streamed from `grounded`: its cited sources with their evidence, or "Not in
        your documents." (the reply kept as ``draft``) when no relevant excerpt backs it."""
        return self.rag.after_generating(grounded, answer_text, self.abstain)

    def _open(self, index_path: str, embedder_path: str) -> list[FileRow]:
        if not embedder_path:
            raise NoEmbedderError("no embedder chosen")
        if self.embedder is None or embedder_path != self.embedder_path:
            embedder = self._loader(embedder_path)
            if not hasattr(embedder, "embed"):
                raise NoEmbedderError(f"{Path(embedder_path).name} is a language model, not an embedder bundle")
            self.embedder, self.embedder_path = embedder, embedder_path
            self.index = None  # an index is tied to the embedder that wrote it
        if self.index is None or index_path != self.index_path:
            self.index = self._close_index()
            Path(index_path).parent.mkdir(parents=True, exist_ok=True)
            self.index = self.rag.Index.open(index_path, self.embedder, create=True)
            self.index_path = index_path
        return self._files()

    def _add(self, paths: list[str], on_progress: Callable) -> AddResult:
        if self.index is None:
            raise NoEmbedderError("no index open")

        def progress(done, total, path):
            self._schedule(partial(on_progress, (done, total, Path(path).name)))

        report = self.index.add(paths, progress=progress)
        return AddResult(added=[*report.added, *report.updated], unchanged=list(report.unchanged),
                         failed=[(path, str(why)) for path, why in report.failed], files=self._files())

    def _prepare(self, model, question: str, k: int, history: list, reply_tokens: int):
        if self.index is None:
            raise NoEmbedderError("no index open")
        return self.rag.prepare(model, self.index, question, k=k, history=history, reply_tokens=reply_tokens)

    def _files(self) -> list[FileRow]:
        return file_rows(self.index.files()) if self.index is not None else []

    def _close_index(self):
        close = getattr(self.index, "close", None)
        if close is not None:
            close()
        return None

    # -- the thread ---------------------------------------------------------------------------------

    def _submit(self, job: Callable, on_done: Callable, on_error: Callable) -> None:
        self._jobs.put((job, on_done, on_error))

    def _loop(self) -> None:
        while True:
            job, on_done, on_error = self._jobs.get()
            try:
                result = job()
            except Exception as exc:  # noqa: BLE001 - every failure must reach the screen, not a log
                self._schedule(partial(on_error, exc))
            else:
                self._schedule(partial(on_done, result))


def file_rows(files) -> list[FileRow]:
    """``Index.files()`` (FileEntry: path, chunks, ...) as the panel's rows, by file name."""
    return sorted((FileRow(str(f.path), int(f.chunks)) for f in files), key=lambda r: (r.name.lower(), r.path))


def source_label(source) -> str:
    """"[2] handbook.md, chunk 3, evidence 0.82": the number the answer cites it by, the file, where in it, and
    how well it backs the answer (0..1; not shown before there is an answer)."""
    evidence = getattr(source, "evidence", None)
    return (f"[{source.n}] {Path(str(source.path)).name}, chunk {source.chunk_no}"
            + ("" if evidence is None else f", evidence {evidence:.2f}"))


def sources_caption(sources: list) -> str:
    """The line under a grounded answer."""
    return ("Sources: " + "  ·  ".join(source_label(s) for s in sources)) if sources else ""


def answer_caption(answer) -> str:
    """What goes under a grounded answer: its sources, or why it is "Not in your documents." and what was
    closest."""
    closest = "  ·  ".join(source_label(s) for s in answer.sources)
    if answer.abstained == "weak_retrieval":
        return (f"Nothing in your documents is close to this question (best match {answer.retrieval:.2f}, needs "
                f"{answer.policy.min_retrieval:.2f}). Closest: {closest}")
    if answer.abstained == "unsupported":
        draft = " ".join((answer.draft or "").split())
        draft = draft if len(draft) <= 160 else draft[:159] + "…"
        return (f"Your documents do not back the model's answer (evidence {answer.support:.2f}, needs "
                f"{answer.policy.min_support:.2f}): \u201c{draft}\u201d\nGiven: {closest}")
    return sources_caption(answer.cited or answer.sources)
