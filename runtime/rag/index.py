"""A local index of the user's documents: files in, chunks embedded, exact top-k cosine search out.

    index = Index.open("notes.index", embedder, create=True)   # records the embedder on creation
    report = index.add(["~/notes", "paper.pdf"])                 # unchanged files are not embedded again
    for hit in index.search("when is the rent due?", k=5):
        print(f"{hit.score:.2f} {hit.path}#{hit.chunk_no}: {hit.text[:80]}")

The embedder is anything with `embed(texts) -> float32 [n, dim]` (unit rows), `dim`, `max_tokens`,
`count_tokens(text)`, `identity` ({"name", "fingerprint", ...}) and `bundle_dir`: what edge_sdk.load
returns for an embedder bundle. Vectors from different models do not compare, so an index accepts only
the embedder (same fingerprint) it was created with.

Search is exact: all vectors sit in one float32 matrix, loaded from SQLite on the first search and
reloaded after any change (by this object or another process); a query is one matrix-vector product
and np.argpartition. At 384 dims and 100k chunks that is a 150 MB matrix, 15-30 ms per query and ~0.6 s
to load on a 2-core x86 server (benchmarks/rag_latency.py); 10k chunks: ~1 ms, 0.1 s.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edge_sdk.errors import DocumentIndexError, DocumentReadError, EdgeError

from .chunking import chunk_text
from .readers import SUPPORTED_SUFFIXES, decode_document, is_supported, read_bytes
from .store import FileEntry, Store

BATCH = 32            # chunks per embed() call: bounds the activations' memory on a phone
CHUNK_TOKENS = 200    # default chunk size (or the embedder's max_tokens if smaller)
OVERLAP_FRACTION = 5  # default overlap: 1/5 of the chunk size (40 tokens of 200)

Progress = Callable[[int, int, str], None]  # (files done, files in total, the file just done)


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk of `path`, `text == document[start:end]`, `score` = cosine similarity."""

    path: str
    chunk_no: int
    text: str
    score: float
    start: int
    end: int


@dataclass
class AddReport:
    """What Index.add did, by resolved path. `failed` holds (path, reason); `skipped` are files without an
    extension found in a folder that turned out not to be text; `links` are symbolic links found in a folder,
    not followed (a link can lead out of the folder, to ~/.ssh/id_ed25519 say); `removed` are indexed files
    under a folder given to `add` that are no longer on disk (their chunks are gone from the index)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks: int = 0  # chunks embedded by this call

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "failed": [{"path": p, "reason": r} for p, r in self.failed], "skipped": self.skipped,
                "links": self.links, "removed": self.removed, "chunks": self.chunks}


def embedder_identity(embedder) -> dict:
    """The embedder's identity dict, checked to have a name and a fingerprint."""
    identity = getattr(embedder, "identity", None)
    if not (isinstance(identity, dict) and isinstance(identity.get("name"), str)
            and isinstance(identity.get("fingerprint"), str) and identity["fingerprint"]):
        raise DocumentIndexError(f"{type(embedder).__name__} is not an embedder (no identity with a name and a "
                                 f"fingerprint); load an embedder bundle with edge_sdk.load")
    return dict(identity)


class Index:
    """A document index in one SQLite file. Use Index.open; close() when done (or `with`).

    An Index object belongs to the thread that opened it (sqlite3's rule); other threads or processes
    open their own: readers see a writer's changes file by file, as it commits them.
    """

    def __init__(self, store: Store, embedder=None):
        self._store, self.embedder = store, embedder
        meta = store.meta()
        self.dim: int = meta["dim"]
        self.chunk_tokens: int = meta["chunk_tokens"]
        self.overlap_tokens: int = meta["overlap_tokens"]
        self.embedder_info: dict = meta["embedder"]       # the identity of the embedder that made the vectors
        self.embedder_bundle: str | None = meta.get("embedder_bundle")  # where it was loaded from, for later adds
        self._matrix: tuple[np.ndarray, np.ndarray, int] | None = None  # (chunk ids, vectors, data_version)
        if embedder is not None:
            self._check_embedder(embedder)

    @classmethod
    def open(cls, path: str | Path, embedder=None, *, create: bool = False, chunk_tokens: int | None = None,
             overlap_tokens: int | None = None) -> "Index":
        """Open the index at `path`. With `create`, a missing index is created for `embedder` (required
        then), chunking documents into `chunk_tokens` (default min(200, embedder.max_tokens)) with
        `overlap_tokens` of overlap (default a fifth); both are recorded and apply to every later add.

        `embedder` may be None to list or remove files, or search by vector; given, it must be the one the
        index was made with. Raises DocumentIndexError (missing, not an index, damaged, newer schema,
        another embedder).
        """
        store = Store.open(path, create=create)
        try:
            if not store.initialized:
                if embedder is None:
                    raise DocumentIndexError(f"creating the index {path} needs an embedder (edge-sdk index add "
                                             f"--embedder DIR)")
                identity = embedder_identity(embedder)
                size = chunk_tokens or min(CHUNK_TOKENS, int(embedder.max_tokens))
                overlap = size // OVERLAP_FRACTION if overlap_tokens is None else overlap_tokens
                if not 0 <= overlap < size or size > int(embedder.max_tokens):
                    raise ValueError(f"chunk_tokens must be in [1, {embedder.max_tokens}] and overlap_tokens in "
                                     f"[0, chunk_tokens), got {size} and {overlap}")
                bundle = getattr(embedder, "bundle_dir", None)
                store.initialize(int(embedder.dim), identity, str(Path(bundle).resolve()) if bundle else None,
                                 size, overlap)
            return cls(store, embedder)
        except BaseException:
            store.close()
            raise

    @property
    def path(self) -> Path:
        return self._store.path

    def close(self) -> None:
        self._store.close()
        self._matrix = None

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        """Chunks in the index."""
        return self._store.chunk_count()

    # -- documents -------------------------------------------------------------------------------
    def add(self, paths: Iterable[str | Path], progress: Progress | None = None) -> AddReport:
        """Index these files, and the supported files under these folders (hidden ones skipped).

        Symbolic links met inside a folder (to files or to folders) are not followed: they are listed in
        `report.links`, since a link can lead anywhere (a file named here is taken as it resolves).
        A file is known by its resolved path: one whose bytes (by sha256, not size) did not change since it
        was indexed is skipped; a changed one has its chunks replaced. A file that cannot be read is recorded in
        `report.failed` and the others are indexed. Each file is committed on its own, so an
        interrupted add keeps the files done so far. `progress(done, total, path)` is called after each file.
        Adding a folder again also forgets the indexed files under it that are gone from disk
        (`report.removed`), so a deleted document stops being cited; a folder that is itself missing (an
        unmounted card) is a failure and forgets nothing.
        """
        if self.embedder is None:
            raise DocumentIndexError(f"adding to {self.path} needs its embedder ({self.embedder_info.get('name')}); "
                                     f"open the index with it")
        report = AddReport()
        folders: list[Path] = []
        files = self._expand(paths, report, folders)
        gone = [f.path for f in (self._store.files() if folders else []) for folder in folders
                if _is_under(f.path, folder) and not os.path.lexists(f.path)]
        if gone:
            report.removed = self._store.remove_files(sorted(set(gone)))
            self._matrix = None
        for done, (path, named) in enumerate(files, 1):
            key = str(path)
            try:
                if not _utf8(key):  # SQLite stores text as UTF-8: the name could not be recorded
                    raise DocumentReadError("its name is not valid UTF-8; rename the file")
                status, chunks = self._add_file(path)
                getattr(report, status).append(key)
                report.chunks += chunks
            except DocumentReadError as e:
                if not named and path.suffix == "":  # e.g. an executable found in a folder: not a document
                    report.skipped.append(key)
                else:
                    report.failed.append((key, str(e)))
            except DocumentIndexError:
                raise  # the index itself is the problem: no point in going on
            except EdgeError as e:  # the embedder refused this file's text
                report.failed.append((key, str(e)))
            if progress:
                progress(done, len(files), key)
        return report

    def remove(self, paths: Iterable[str | Path]) -> list[str]:
        """Forget these files (and every indexed file under these folders); the paths removed. The files
        need not exist any more."""
        removed = self._store.remove_files([str(Path(p).expanduser().resolve()) for p in paths])
        if removed:
            self._matrix = None
        return removed

    def files(self) -> list[FileEntry]:
        """The indexed files, by path."""
        return self._store.files()

    def check(self) -> list[str]:
        """Problems with the file (SQLite's integrity check, files missing chunks); [] when it is sound."""
        return self._store.check()

    # -- search ----------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The k chunks most similar to `query` (embedded with the index's embedder), best first."""
        if self.embedder is None:
            raise DocumentIndexError(f"searching {self.path} by text needs its embedder "
                                     f"({self.embedder_info.get('name')}); open the index with it")
        return self.search_vector(self._embed([query])[0], k)

    def search_vector(self, vector, k: int = 5) -> list[Hit]:
        """The k chunks whose vectors have the highest cosine similarity with `vector` [dim], best first."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        q = np.asarray(vector, np.float32).reshape(-1)
        norm = float(np.linalg.norm(q)) if q.shape == (self.dim,) else 0.0
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"the query vector must be {self.dim} finite numbers, not all zero; got shape "
                             f"{np.shape(vector)}")
        ids, matrix = self._vectors()
        if len(ids) == 0:
            return []
        scores = matrix @ (q / norm)  # [n]: stored rows are unit length, so these are cosines
        k = min(int(k), len(ids))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
        top = top[np.argsort(-scores[top], kind="stable")]
        rows = self._store.rows(ids[top])
        return [Hit(r.path, r.chunk_no, r.text, float(scores[i]), r.start, r.end)
                for i, cid in zip(top, ids[top]) if (r := rows.get(int(cid))) is not None]

    # -- internals -------------------------------------------------------------------------------
    def _check_embedder(self, embedder) -> None:
        have, want = embedder_identity(embedder), self.embedder_info
        if have["fingerprint"] != want.get("fingerprint"):
            raise DocumentIndexError(
                f"{self.path} was made with the embedder {want.get('name')!r} (fingerprint "
                f"{str(want.get('fingerprint'))[:12]}), not {have['name']!r} ({have['fingerprint'][:12]}); "
                f"use that embedder, or build a new index")
        if int(embedder.dim) != self.dim:
            raise DocumentIndexError(f"{self.path} holds {self.dim}-dim vectors but the embedder makes "
                                     f"{embedder.dim}; the index or the embedder bundle is damaged")

    def _add_file(self, path: Path) -> tuple[str, int]:
        # `path` is resolved (or found by a walk that follows no link): a link there now was put there since.
        data = read_bytes(path, follow_links=False)
        sha = hashlib.sha256(data).hexdigest()
        known = self._store.file(str(path))
        if known is not None and known.sha256 == sha:
            return "unchanged", 0
        text = decode_document(path, data)
        try:
            chunks = chunk_text(text, self.embedder.count_tokens, self.chunk_tokens, self.overlap_tokens)
        except ValueError as e:  # a character the tokenizer makes more tokens of than a chunk holds
            raise DocumentReadError(f"cannot cut it into chunks: {e}") from None
        vectors = np.empty((len(chunks), self.dim), np.float32)  # [n, dim]: one file's worth (<= 20 MB of text)
        for b in range(0, len(chunks), BATCH):
            vectors[b:b + BATCH] = self._embed([c.text for c in chunks[b:b + BATCH]])
        self._store.replace_file(str(path), sha, len(data), chunks, vectors)
        self._matrix = None
        return ("updated" if known else "added"), len(chunks)

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.asarray(self.embedder.embed(texts), np.float32)
        if out.shape != (len(texts), self.dim) or not np.isfinite(out).all():
            raise DocumentIndexError(f"the embedder returned {out.shape} (finite: {bool(np.isfinite(out).all())}) "
                                     f"for {len(texts)} texts; expected ({len(texts)}, {self.dim})")
        norms = np.linalg.norm(out, axis=1, keepdims=True)  # [n, 1]; unit rows make dot products cosines
        return out / np.where(norms > 0, norms, 1.0)

    def _vectors(self) -> tuple[np.ndarray, np.ndarray]:
        # Reload when anything committed since the last load, here (add/remove reset _matrix) or elsewhere.
        if self._matrix is None or self._matrix[2] != self._store.data_version():
            self._matrix = None  # free the old matrix before the new one is allocated
            self._matrix = self._store.vectors(self.dim)
        return self._matrix[0], self._matrix[1]

    def _expand(self, paths: Iterable[str | Path], report: AddReport, folders: list[Path]) -> list[tuple[Path, bool]]:
        """(resolved file, named on its own) for every file to index, in order, without repeats; the
        resolved folders among `paths` are appended to `folders`."""
        own = {str(self.path.resolve()), str(self.path.resolve()) + "-journal"}
        out: dict[str, tuple[Path, bool]] = {}
        for p in paths:
            given = Path(p).expanduser()
            try:
                path = given.resolve(strict=True)
            except (OSError, RuntimeError):  # missing, a broken link, a symlink loop
                report.failed.append((str(given.absolute()), "no such file or folder"))
                continue
            if not path.is_dir():
                out.setdefault(str(path), (path, True))
                continue
            folders.append(path)
            found = [f for f in _walk(path, report) if str(f) not in own]
            if not found:
                report.failed.append((str(path), f"no documents in this folder (looked for "
                                                  f"{', '.join(sorted(s for s in SUPPORTED_SUFFIXES if s))})"))
            for f in found:
                out.setdefault(str(f), (f, False))
        return list(out.values())


def _is_under(path: str, folder: Path) -> bool:
    return path.startswith(str(folder).rstrip(os.sep) + os.sep)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a name with bytes that are not UTF-8 (surrogate escapes)
        return False


def _walk(folder: Path, report: AddReport) -> list[Path]:
    """Supported files under `folder`, sorted, skipping hidden files and folders. Symbolic links, to files or
    to folders, are not followed (recorded in report.links): a link inside the folder can point anywhere,
    and what a user indexes (and later sends to a model) is what is in the folder."""
    found: list[Path] = []

    def unreadable(e: OSError) -> None:
        report.failed.append((str(e.filename), f"cannot list this folder ({e.strerror})"))

    for root, dirs, names in os.walk(folder, onerror=unreadable):  # followlinks=False: linked folders not entered
        for d in sorted(dirs):
            if not d.startswith(".") and os.path.islink(os.path.join(root, d)):
                report.links.append(os.path.join(root, d))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            if name.startswith(".") or not is_supported(name):
                continue
            path = Path(root, name)
            if path.is_symlink():
                report.links.append(str(path))
            elif path.is_file():
                found.append(path)
    return found
