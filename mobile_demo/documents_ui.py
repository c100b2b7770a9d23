"""The Docs panel's side of the app: the document index, its embedder, and "answer from my documents".

A mixin of ChatApp (app.py), which uses ``library`` in ``send``. The slow work runs on the documents thread
(documents.py); these methods only ask for it and show what comes back, on the main thread.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from kivy.clock import Clock
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

import edge_sdk
from edge_sdk.errors import BundleError

from . import widgets
from .bundle_paths import EMBEDDER_EXPORT_COMMAND
from .documents import Library, NoEmbedderError


class DocumentsMixin:
    # Documents (edge_sdk.rag): an index file of the user's files and the embedder bundle it is built with.
    # Off until the user turns it on in the Docs panel; nothing is indexed without being asked.
    embedder_path = StringProperty("")
    index_path = StringProperty("")       # "" = documents.index in the app's data folder
    use_documents = BooleanProperty(False)
    retrieval_k = NumericProperty(4)      # excerpts retrieved per question
    documents_busy = BooleanProperty(False)
    documents_status = StringProperty("")
    documents_problem = BooleanProperty(False)  # documents_status is an error (shown in red)
    document_rows = ListProperty([])     # {"text": "name · n chunks"} per indexed file, for the panel

    # -- documents --------------------------------------------------------------------------

    @property
    def library(self) -> Library:
        if self._library is None:
            self._library = Library(schedule=Clock.schedule_once, loader=self._loader, rag=self._rag)
        return self._library

    def open_documents(self):
        """The Docs panel: embedder, index file, the files in it, and the "answer from my documents" switch."""
        if not self.index_path:
            self.index_path = os.path.join(self.user_data_dir, DOCUMENTS_INDEX)
        widgets.DocumentsPanel().open()

    def browse_for_documents(self):
        if not self.embedder_path.strip():  # say so now, not after the user has picked the files
            self._documents_failed(NoEmbedderError("no embedder chosen"))
            return
        widgets.DocumentChooser(on_choose=self.add_documents, start_path=self._last_documents_dir).open()

    _last_documents_dir = os.getcwd()

    def open_index(self, embedder_path: str | None = None, index_path: str | None = None, then=None) -> bool:
        """Load the embedder and open (or create) the index; `then(files)` once it is open."""
        embedder = os.path.expanduser((self.embedder_path if embedder_path is None else embedder_path).strip())
        index = os.path.expanduser((self.index_path if index_path is None else index_path).strip())
        self.embedder_path = embedder
        self.index_path = index = index or os.path.join(self.user_data_dir, DOCUMENTS_INDEX)
        if not embedder:
            self._documents_failed(NoEmbedderError("no embedder chosen"))
            return False
        if self.documents_busy:
            return False
        self.documents_busy, self.documents_problem = True, False
        self.documents_status = f"Opening {_short(index)}…"
        self.library.open(index, embedder, on_done=partial(self._on_index_opened, then),
                          on_error=self._on_documents_error)
        return True

    def _on_index_opened(self, then, files, _dt):
        self.documents_busy = False
        self._show_files(files)
        self.documents_status = _count_words(files) + f" in {Path(self.index_path).name}"
        if then is not None:
            then(files)

    def add_documents(self, paths):
        """Index the chosen files and folders (the documents in them), opening the index first if needed."""
        paths = [str(p) for p in paths if str(p).strip()]
        if not paths:
            self.documents_status, self.documents_problem = "No files chosen.", True
            return
        self._last_documents_dir = str(Path(paths[0]).parent if Path(paths[0]).is_file() else Path(paths[0]))
        if not self._index_is_current():
            self.open_index(then=lambda _files: self.add_documents(paths))
            return
        self.documents_busy, self.documents_problem = True, False
        self.documents_status = "Indexing…"
        self.library.add(paths, on_progress=self._on_add_progress,
                         on_done=self._on_documents_added, on_error=self._on_documents_error)

    def _on_add_progress(self, progress, _dt):
        done, total, name = progress
        self.documents_status = f"Indexed {done} of {total}: {name}"

    def _on_documents_added(self, report, _dt):
        self.documents_busy = False
        self._show_files(report.files)
        added = f"Added {len(report.added)} file{'s' * (len(report.added) != 1)}"
        if report.unchanged:
            added += f" ({len(report.unchanged)} already indexed)"
        if report.failed:
            why = "\n".join(f"  • {Path(path).name}: {reason}" for path, reason in report.failed)
            self.documents_status = f"{added}; {len(report.failed)} could not be read:\n{why}"
            self.documents_problem = True
        else:
            self.documents_status = f"{added}. {_count_words(report.files)} in {Path(self.index_path).name}."
            self.documents_problem = False

    def set_use_documents(self, on: bool):
        """The "answer from my documents" switch: turning it on opens the index first (it needs the embedder)."""
        if not on or self._index_is_current():
            self.use_documents = bool(on)
            if on and not self.document_rows:
                self.documents_status = "The index is empty: add files to answer from them."
            return
        if not self.open_index(then=lambda files: self.set_use_documents(True)):
            self.property("use_documents").dispatch(self)  # put the switch back: it is still off

    def _index_is_current(self) -> bool:
        lib = self.library
        return lib.is_open and lib.embedder_path == self.embedder_path and lib.index_path == self.index_path

    def _show_files(self, files):
        self.document_rows = [{"text": f"{f.name}  ·  {f.chunks} chunk{'s' * (f.chunks != 1)}"} for f in files]

    def _on_documents_error(self, exc, _dt):
        self.documents_busy = False
        self._documents_failed(exc)

    def _documents_failed(self, exc):
        if isinstance(exc, NoEmbedderError) and str(exc) == "no embedder chosen":
            text = (f"Choose an embedder bundle first: the folder of a sentence embedder, made on a computer with "
                    f"{EMBEDDER_EXPORT_COMMAND}")
        elif isinstance(exc, (NoEmbedderError, BundleError)):
            text = f"The embedder can't be used: {exc}"
        else:
            text = f"The document index can't be used: {error_text(exc)}"
        self.documents_status, self.documents_problem = text, True
        if self.use_documents and not self._index_is_current():
            self.use_documents = False
        self.property("use_documents").dispatch(self)


DOCUMENTS_INDEX = "documents.index"  # in the app's data folder unless the user names another file


def _count_words(files) -> str:
    chunks = sum(f.chunks for f in files)
    return f"{len(files)} file{'s' * (len(files) != 1)}, {chunks} chunk{'s' * (chunks != 1)}"


def error_text(exc) -> str:
    """edge-sdk's errors say what is wrong and what to do; anything else is unexpected, so name its type too."""
    return str(exc) if isinstance(exc, edge_sdk.EdgeError) else f"{type(exc).__name__}: {exc}"


def _short(path) -> str:
    """A path as a person would type it: the home folder as ~."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text.startswith(home + os.sep) else text
