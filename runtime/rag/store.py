"""The document index on disk: one SQLite file holding chunk texts, their vectors and what made them.

Schema (version 1; `PRAGMA user_version` = 1, `PRAGMA application_id` = 0x45524147 "ERAG"):

    meta(key TEXT PRIMARY KEY, value TEXT)      format, schema, created, dim, chunk_tokens, overlap_tokens,
                                                embedder (JSON identity), embedder_bundle (path)
    files(id, path UNIQUE, sha256, bytes, chunks, tokens, added)
    chunks(id, file_id, chunk_no, start_char, end_char, tokens, text)            UNIQUE(file_id, chunk_no)
    vectors(chunk_id PRIMARY KEY, vector)       float32 little-endian [dim], unit length

Vectors have their own table (and the file 8 KB pages) so that loading them for search reads only their
pages, densely packed, and not the texts: 1.6 KB per 384-dim vector instead of a 4 KB page per chunk.

Crash safety: SQLite's rollback journal with synchronous=FULL. A file's row and all its chunks are
written in one transaction, so a process killed at any point leaves either the file's old version or
its new one, never a mix; the next connection rolls back an interrupted transaction from the hot
journal. The index is a single file at rest (no -wal/-shm beside it), easy to copy to a phone.

Index files are untrusted: anything SQLite or this module finds wrong is a DocumentIndexError. SQLite
stores any value in any column of a crafted file, so every value read is checked for its type and range
(`_typed`) before it leaves this module.
"""
from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_sdk.errors import DocumentIndexError

from ..display import printable

SCHEMA_VERSION = 1
APPLICATION_ID = 0x45524147  # "ERAG" in the SQLite header: tells our files from other SQLite databases
FORMAT = "edge-sdk document index"
MAX_DIM = 65536
MAX_CHUNK_TOKENS = 1 << 20
MAX_TIME = 1e11  # seconds since 1970: year ~5100; bounds what time.localtime must format
_SQLITE_MAGIC = b"SQLite format 3\x00"
PAGE_SIZE = 8192
_ROWS_PER_QUERY = 500  # bound parameters per IN (...): well under SQLite's limit on every version

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,     -- resolved absolute path
    sha256 TEXT NOT NULL,          -- of the file's bytes: unchanged files are not embedded again
    bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL,       -- rows in `chunks` for this file (checked by Store.check)
    tokens INTEGER NOT NULL,       -- sum of the chunks' tokens (overlap counted twice)
    added REAL NOT NULL            -- unix time of the last (re)indexing
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id),
    chunk_no INTEGER NOT NULL,     -- 0, 1, ... in document order
    start_char INTEGER NOT NULL,   -- offsets into the document's text as the reader returned it
    end_char INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (file_id, chunk_no)
);
CREATE TABLE vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id),
    vector BLOB NOT NULL           -- float32 little-endian [dim], unit length
);
"""


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 62


def _seconds(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v < MAX_TIME


def _text(v) -> bool:
    return isinstance(v, str)


# The checks of each row a query returns, in column order.
_FILE_ROW = (("path", _text), ("sha256", _text), ("bytes", _count), ("chunks", _count), ("tokens", _count),
             ("added", _seconds))
_CHUNK_ROW = (("id", _count), ("path", _text), ("chunk_no", _count), ("text", _text), ("start_char", _count),
              ("end_char", _count))


@dataclass(frozen=True)
class FileEntry:
    """A file in the index, as of its last indexing."""

    path: str
    sha256: str
    bytes: int
    chunks: int
    tokens: int
    added: float  # unix time


@dataclass(frozen=True)
class ChunkRow:
    path: str
    chunk_no: int
    text: str
    start: int
    end: int


class Store:
    """SQLite access for Index: every method is one statement or one transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path, self.conn = path, conn

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, create: bool = False) -> "Store":
        """Open the index at `path` (DocumentIndexError if it is not one); with `create`, a missing file is
        made, and `initialized` tells whether it still needs `initialize`."""
        path = Path(path)
        if path.is_dir():
            raise DocumentIndexError(f"{path} is a folder; give the index's file name, e.g. {path / 'docs.index'}")
        if not path.exists():
            if not create:
                raise DocumentIndexError(f"no index at {path}; create one with: edge-sdk index add {path} FILES... "
                                         f"--embedder DIR")
            if not path.parent.is_dir():
                raise DocumentIndexError(f"cannot create {path}: the folder {path.parent} does not exist")
        elif not _looks_like_sqlite(path):
            raise DocumentIndexError(f"{path} is not a document index (not an SQLite file); give another path")
        uri = path.absolute().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        with _errors(path, "open"):
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
        store = cls(path, conn)
        try:
            with _errors(path, "open"):
                conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it returns
                store._validate(create)
        except BaseException:
            conn.close()
            raise
        return store

    def _validate(self, create: bool) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if app_id == 0 and not tables:
            if create:
                return  # a new (or never finished) file: initialize() writes everything in one transaction
            raise DocumentIndexError(f"{self.path} is an empty database, not an index (an interrupted first add?); "
                                     f"run edge-sdk index add again with --embedder, or delete it")
        if app_id != APPLICATION_ID:
            raise DocumentIndexError(f"{self.path} is an SQLite database but not a document index; give another path")
        if version > SCHEMA_VERSION:
            raise DocumentIndexError(f"{self.path} was written by a newer edge-sdk (index schema {version}; this one "
                                     f"reads {SCHEMA_VERSION}); upgrade edge-sdk")
        if version < 1 or not {"meta", "files", "chunks", "vectors"} <= tables:
            raise DocumentIndexError(f"{self.path} is a damaged document index (schema {version}, tables "
                                     f"{sorted(tables)}); rebuild it")
        meta = self.meta()
        for key in ("dim", "embedder", "chunk_tokens", "overlap_tokens"):
            if key not in meta:
                raise DocumentIndexError(f"{self.path} is a damaged document index (no {key!r} in meta); rebuild it")

    @property
    def initialized(self) -> bool:
        with _errors(self.path, "read"):
            return self.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID

    def initialize(self, dim: int, embedder: dict, embedder_bundle: str | None, chunk_tokens: int,
                   overlap_tokens: int) -> None:
        """Create the schema and record what makes the vectors, in one transaction."""
        meta = {"format": FORMAT, "schema": SCHEMA_VERSION, "created": time.time(), "dim": dim,
                "embedder": embedder, "embedder_bundle": embedder_bundle, "chunk_tokens": chunk_tokens,
                "overlap_tokens": overlap_tokens}
        with _errors(self.path, "create"):
            self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect before the first table
        with self._transaction("create"):
            for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT on its own
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            self.conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- reading ---------------------------------------------------------------------------------
    def meta(self) -> dict:
        with _errors(self.path, "read"):
            rows = self.conn.execute("SELECT key, value FROM meta").fetchall()
        try:
            meta = {k: json.loads(v) for k, v in rows}
        except (TypeError, ValueError):
            raise DocumentIndexError(f"{self.path} is a damaged document index (meta is not JSON); "
                                     f"rebuild it") from None
        checks = {"dim": lambda v: _count(v) and 0 < v <= MAX_DIM,
                  "chunk_tokens": lambda v: _count(v) and 0 < v <= MAX_CHUNK_TOKENS,
                  "overlap_tokens": lambda v: _count(v) and v < meta.get("chunk_tokens", 0),
                  "embedder": lambda v: isinstance(v, dict) and _text(v.get("name")) and _text(v.get("fingerprint")),
                  "embedder_bundle": lambda v: v is None or _text(v)}
        for key, ok in checks.items():
            if key in meta and not ok(meta[key]):
                raise self._damaged(f"meta {key} is {printable(repr(meta[key])[:60])}")
        return meta

    def _damaged(self, what: str) -> DocumentIndexError:
        return DocumentIndexError(f"{printable(self.path)} is a damaged document index ({what}); rebuild it")

    def _typed(self, table: str, checks, row) -> tuple:
        """`row` if each value passes its check, else DocumentIndexError naming the field (SQLite keeps any type
        in any column of a crafted file: a text 'added' or a blob path would fail far from here)."""
        if row is None or len(row) != len(checks):
            raise self._damaged(f"a {table} row has {len(row or ())} fields")
        for (name, ok), value in zip(checks, row):
            if not ok(value):
                raise self._damaged(f"{table}.{name} is {type(value).__name__} {printable(repr(value)[:40])}")
        return tuple(row)

    def file(self, path: str) -> FileEntry | None:
        with _errors(self.path, "read"):
            row = self.conn.execute("SELECT path, sha256, bytes, chunks, tokens, added FROM files WHERE path = ?",
                                    (path,)).fetchone()
        return FileEntry(*self._typed("files", _FILE_ROW, row)) if row else None

    def files(self) -> list[FileEntry]:
        with _errors(self.path, "read"):
            rows = self.conn.execute("SELECT path, sha256, bytes, chunks, tokens, added FROM files ORDER BY path")
            return [FileEntry(*self._typed("files", _FILE_ROW, r)) for r in rows]

    def chunk_count(self) -> int:
        with _errors(self.path, "read"):
            return self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cached vector matrix is stale."""
        with _errors(self.path, "read"):
            return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(chunk ids [n] int64, vectors [n, dim] float32, data_version) as of one consistent snapshot."""
        with self._transaction("read", begin="BEGIN"):
            n = self.conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            ids = np.empty(n, np.int64)
            matrix = np.empty((n, dim), np.float32)  # [n, dim]; allocated once, filled row by row
            rows = self.conn.execute("SELECT chunk_id, vector FROM vectors ORDER BY chunk_id")
            for i, (chunk_id, blob) in enumerate(rows):
                if i >= n or not _count(chunk_id) or not isinstance(blob, bytes) or len(blob) != 4 * dim:
                    raise self._damaged(f"chunk {printable(repr(chunk_id)[:40])}'s vector is not {dim} float32 values")
                ids[i] = chunk_id
                matrix[i] = np.frombuffer(blob, "<f4")
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return ids, matrix, version

    def rows(self, chunk_ids) -> dict[int, ChunkRow]:
        """The chunks with these ids, with their files' paths."""
        chunk_ids = [int(i) for i in chunk_ids]
        out: dict[int, ChunkRow] = {}
        with _errors(self.path, "read"):
            for b in range(0, len(chunk_ids), _ROWS_PER_QUERY):
                part = chunk_ids[b:b + _ROWS_PER_QUERY]
                for row in self.conn.execute(
                        "SELECT c.id, f.path, c.chunk_no, c.text, c.start_char, c.end_char FROM chunks c "
                        f"JOIN files f ON f.id = c.file_id WHERE c.id IN ({','.join('?' * len(part))})", part):
                    cid, *fields = self._typed("chunks", _CHUNK_ROW, row)
                    out[cid] = ChunkRow(*fields)
        return out

    # -- writing ---------------------------------------------------------------------------------
    def replace_file(self, path: str, sha256: str, size: int, chunks, vectors: np.ndarray) -> None:
        """Record `path` with these chunks (Chunk objects) and vectors [len(chunks), dim], replacing its
        previous version, in one transaction."""
        tokens = sum(c.tokens for c in chunks)
        with self._transaction("write"):
            row = self.conn.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if row:
                file_id = row[0]
                self._delete_chunks(file_id)
                self.conn.execute("UPDATE files SET sha256=?, bytes=?, chunks=?, tokens=?, added=? WHERE id=?",
                                  (sha256, size, len(chunks), tokens, time.time(), file_id))
            else:
                file_id = self.conn.execute(
                    "INSERT INTO files (path, sha256, bytes, chunks, tokens, added) VALUES (?, ?, ?, ?, ?, ?)",
                    (path, sha256, size, len(chunks), tokens, time.time())).lastrowid
            vectors = np.ascontiguousarray(vectors, "<f4")
            first = self.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()[0]
            self.conn.executemany(
                "INSERT INTO chunks (id, file_id, chunk_no, start_char, end_char, tokens, text) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((first + no, file_id, no, c.start, c.end, c.tokens, c.text) for no, c in enumerate(chunks)))
            self.conn.executemany("INSERT INTO vectors (chunk_id, vector) VALUES (?, ?)",
                                  ((first + no, vectors[no].tobytes()) for no in range(len(chunks))))

    def remove_files(self, paths: list[str]) -> list[str]:
        """Remove these files, and every file under those that are folders; the paths removed."""
        removed: list[str] = []
        with self._transaction("write"):
            for p in paths:
                under = p.rstrip("/") + "/"
                rows = self.conn.execute("SELECT id, path FROM files WHERE path = ? OR substr(path, 1, ?) = ?",
                                         (p, len(under), under)).fetchall()
                for file_id, fpath in (self._typed("files", (("id", _count), ("path", _text)), r) for r in rows):
                    self._delete_chunks(file_id)
                    self.conn.execute("DELETE FROM files WHERE id = ?", (file_id,))
                    removed.append(fpath)
        return removed

    def _delete_chunks(self, file_id: int) -> None:
        self.conn.execute("DELETE FROM vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE file_id = ?)",
                          (file_id,))
        self.conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))

    def check(self) -> list[str]:
        """Problems found by SQLite's integrity check and ours (files whose chunks are not all there)."""
        with _errors(self.path, "check"):
            problems = [r[0] for r in self.conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            for path, want, have, top in self.conn.execute(
                    "SELECT f.path, f.chunks, COUNT(c.id), COALESCE(MAX(c.chunk_no), -1) FROM files f "
                    "LEFT JOIN chunks c ON c.file_id = f.id GROUP BY f.id"):
                if want != have or top != have - 1:
                    problems.append(f"{path}: {have} chunks stored, {want} recorded")
            orphans = self.conn.execute(
                "SELECT COUNT(*) FROM chunks WHERE file_id NOT IN (SELECT id FROM files)").fetchone()[0]
            if orphans:
                problems.append(f"{orphans} chunks belong to no file")
            unpaired = self.conn.execute(
                "SELECT (SELECT COUNT(*) FROM chunks WHERE id NOT IN (SELECT chunk_id FROM vectors)) + "
                "(SELECT COUNT(*) FROM vectors WHERE chunk_id NOT IN (SELECT id FROM chunks))").fetchone()[0]
            if unpaired:
                problems.append(f"{unpaired} chunks without a vector or vectors without a chunk")
        return problems

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def _transaction(self, what: str, begin: str = "BEGIN IMMEDIATE"):
        # IMMEDIATE takes the write lock up front: two indexing processes wait for each other (timeout 10 s)
        # instead of failing half-way through a file.
        with _errors(self.path, what):
            self.conn.execute(begin)
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:  # SQLite itself rolls back after some errors (disk full)
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")


def _looks_like_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise DocumentIndexError(f"cannot read {path}: {e.strerror or e}") from None
    return head == _SQLITE_MAGIC or head == b""  # an empty file is an empty database to SQLite


@contextlib.contextmanager
def _errors(path: Path, what: str):
    """SQLite's errors as DocumentIndexError with a hint."""
    try:
        yield
    except sqlite3.OperationalError as e:
        text = str(e)
        if "locked" in text or "busy" in text:
            raise DocumentIndexError(f"{path} is locked by another process (an index add running?); try again "
                                     f"when it is done") from None
        if "readonly" in text:
            raise DocumentIndexError(f"cannot {what} {path}: the file is read-only") from None
        if "unable to open" in text:
            raise DocumentIndexError(f"cannot open {path}: check that it and its folder exist and are "
                                     f"writable") from None
        raise DocumentIndexError(f"cannot {what} {path}: {text} (is it damaged? rebuild it)") from None
    except sqlite3.DatabaseError as e:  # includes "file is not a database", "database disk image is malformed"
        raise DocumentIndexError(f"{path} is damaged or not a document index ({e}); rebuild it") from None
