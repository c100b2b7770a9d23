"""Index: add (new / changed / unchanged / failed), remove, files, search, and refusing what is not ours."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from edge_sdk.errors import DocumentIndexError
from edge_sdk.rag import Index

from .fake_embedder import FakeEmbedder


def test_add_walks_folders_and_skips_hidden_and_unsupported(tmp_path, docs, embedder):
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        report = index.add([docs])
        names = sorted(p.split("/docs/")[1] for p in report.added)
        assert names == ["notes/cats.txt", "notes/deep/router.rst", "notes/rent.md"]
        assert report.ok and report.chunks == len(index) == 3
        assert [f.path for f in index.files()] == sorted(report.added)
        assert index.check() == []


def test_unchanged_files_are_not_embedded_again_and_changed_ones_replaced(tmp_path, docs, embedder):
    index = Index.open(tmp_path / "x.index", embedder, create=True)
    index.add([docs])
    embedded = embedder.texts
    report = index.add([docs, docs / "notes" / "cats.txt"])  # named twice: once
    assert len(report.unchanged) == 3 and not report.added and embedder.texts == embedded
    (docs / "notes" / "cats.txt").write_text("Cats now chase lasers all night. " * 60)
    report = index.add([docs])
    assert [p.rsplit("/", 1)[1] for p in report.updated] == ["cats.txt"] and len(report.unchanged) == 2
    cats = [f for f in index.files() if f.path.endswith("cats.txt")][0]
    assert cats.chunks > 1 and len(index) == 2 + cats.chunks and index.check() == []
    assert "lasers" in index.search("lasers chase", k=1)[0].text
    index.close()


def test_failures_are_reported_and_the_rest_indexed(tmp_path, docs, embedder):
    (docs / "latin.txt").write_bytes("caf\u00e9".encode("latin-1"))
    (docs / "elf").write_bytes(b"\x7fELF\0\0")  # no extension, binary, found by the walk: skipped quietly
    named = tmp_path / "named"
    named.write_bytes(b"\0\0")  # no extension, binary, named: a failure
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        report = index.add([docs, tmp_path / "missing.md", named])
        failed = {p.rsplit("/", 1)[1]: reason for p, reason in report.failed}
        assert failed == {"missing.md": "no such file or folder", "latin.txt": failed["latin.txt"],
                          "named": "binary content (NUL bytes), not a text document"}
        assert failed["latin.txt"].startswith("not UTF-8 text")
        assert [p.rsplit("/", 1)[1] for p in report.skipped] == ["elf"]
        assert len(report.added) == 3 and not report.ok


def test_an_empty_folder_is_a_failure(tmp_path, embedder):
    (tmp_path / "empty").mkdir()
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        [(path, reason)] = index.add([tmp_path / "empty"]).failed
        assert path.endswith("empty") and reason.startswith("no documents in this folder")


def test_search_ranks_by_cosine(tmp_path, docs, embedder):
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        assert index.search("anything") == []  # empty index
        index.add([docs])
        hits = index.search("when is the rent due", k=10)
        assert len(hits) == 3 and hits[0].path.endswith("rent.md")
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        top = hits[0]
        text = (docs / "notes" / "rent.md").read_text()
        assert text[top.start:top.end] == top.text and top.chunk_no == 0
        q = embedder.embed(["reset the router"])[0]
        assert index.search_vector(q * 7.0, k=1)[0].path.endswith("router.rst")  # any length: cosine
        with pytest.raises(ValueError, match="k must be"):
            index.search("x", k=0)
        with pytest.raises(ValueError, match="64 finite numbers"):
            index.search_vector(np.zeros(64))
        with pytest.raises(ValueError, match="64 finite numbers"):
            index.search_vector(np.ones(3))


def test_search_sees_changes_from_another_connection(tmp_path, docs, embedder):
    path = tmp_path / "x.index"
    reader = Index.open(path, embedder, create=True)
    assert reader.search("rent") == []
    with Index.open(path, embedder) as writer:
        writer.add([docs])
    assert reader.search("rent", k=1)[0].path.endswith("rent.md")  # the cached (empty) matrix was reloaded
    with Index.open(path) as writer:
        writer.remove([docs / "notes" / "rent.md"])
    assert not any(h.path.endswith("rent.md") for h in reader.search("rent", k=5))
    reader.close()


def test_top_k_matches_a_full_sort(tmp_path, embedder):
    from edge_sdk.runtime.rag.chunking import Chunk

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        chunks = [Chunk(f"c{i}", 0, 1, 1) for i in range(300)]
        index._store.replace_file("/f", "0" * 64, 1, chunks, vectors)
        q = rng.standard_normal(64)
        hits = index.search_vector(q, k=7)
        want = np.argsort(-(vectors @ (q / np.linalg.norm(q))))[:7]
        assert [h.chunk_no for h in hits] == list(want)


def test_remove_files_and_folders(tmp_path, docs, embedder):
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        index.add([docs])
        (docs / "notes" / "cats.txt").unlink()  # a file that is gone can still be removed
        assert [p.rsplit("/", 1)[1] for p in index.remove([docs / "notes" / "cats.txt"])] == ["cats.txt"]
        assert [p.rsplit("/", 1)[1] for p in index.remove([docs / "notes" / "deep"])] == ["router.rst"]
        assert index.remove([docs / "notes" / "de"]) == []  # a prefix of a name is not a folder
        assert len(index.files()) == 1 and len(index) == 1 and index.check() == []


def test_adding_a_folder_again_forgets_its_files_that_are_gone(tmp_path, docs, embedder):
    (tmp_path / "outside.txt").write_text("Outside text. " * 5)
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        index.add([docs, tmp_path / "outside.txt"])
        assert any(h.path.endswith("cats.txt") for h in index.search("cats", k=10))
        (docs / "notes" / "cats.txt").unlink()
        (tmp_path / "outside.txt").unlink()  # named on its own, outside the folder: kept until `remove`
        report = index.add([docs / "notes" / "deep"])  # a subfolder: nothing under it is gone
        assert report.removed == [] and len(index.files()) == 4
        report = index.add([docs])
        assert [p.rsplit("/", 1)[1] for p in report.removed] == ["cats.txt"] and len(report.unchanged) == 2
        assert report.as_dict()["removed"] == report.removed
        assert sorted(f.path.rsplit("/", 1)[1] for f in index.files()) == ["outside.txt", "rent.md", "router.rst"]
        assert all(not h.path.endswith("cats.txt") for h in index.search("cats", k=10))
        assert index.check() == []
        # A folder that is itself missing (an unmounted card) is a failure, and forgets nothing.
        (docs / "notes" / "rent.md").unlink()
        (docs / "notes" / "deep" / "router.rst").unlink()
        (docs / "notes" / "deep").rmdir()
        report = index.add([docs / "notes" / "deep"])
        assert report.failed and report.removed == [] and len(index.files()) == 3
        report = index.add([docs])  # the folder itself is there: both files under it are gone
        assert sorted(p.rsplit("/", 1)[1] for p in report.removed) == ["rent.md", "router.rst"]
        assert [f.path.rsplit("/", 1)[1] for f in index.files()] == ["outside.txt"] and len(index) == 1


def test_embedder_is_recorded_and_others_refused(tmp_path, docs, embedder):
    path = tmp_path / "x.index"
    with Index.open(path, embedder, create=True, chunk_tokens=50, overlap_tokens=5) as index:
        index.add([docs])
    with Index.open(path) as index:  # no embedder: listing works, adding and text search do not
        assert index.embedder_info == embedder.identity and (index.chunk_tokens, index.overlap_tokens) == (50, 5)
        assert index.embedder_bundle == str(embedder.bundle_dir.resolve())
        assert len(index.files()) == 3
        with pytest.raises(DocumentIndexError, match="needs its embedder .fake-bow"):
            index.add([docs])
        with pytest.raises(DocumentIndexError, match="by text needs its embedder"):
            index.search("rent")
    other = FakeEmbedder(name="other-model", seed="1")
    with pytest.raises(DocumentIndexError, match="made with the embedder 'fake-bow' .* not 'other-model'"):
        Index.open(path, other)
    with pytest.raises(DocumentIndexError, match="needs an embedder"):
        Index.open(tmp_path / "new.index", create=True)
    with pytest.raises(DocumentIndexError, match="not an embedder"):
        Index.open(tmp_path / "new.index", object(), create=True)


def test_default_chunk_size_follows_the_embedder(tmp_path):
    with Index.open(tmp_path / "a.index", FakeEmbedder(max_tokens=128), create=True) as index:
        assert (index.chunk_tokens, index.overlap_tokens) == (128, 25)
    with Index.open(tmp_path / "b.index", FakeEmbedder(max_tokens=512), create=True) as index:
        assert (index.chunk_tokens, index.overlap_tokens) == (200, 40)
    with pytest.raises(ValueError, match="chunk_tokens must be in"):
        Index.open(tmp_path / "c.index", FakeEmbedder(max_tokens=100), create=True, chunk_tokens=300)


def test_chunks_stay_within_the_chunk_size(tmp_path, embedder):
    doc = tmp_path / "long.md"
    doc.write_text("\n\n".join(" ".join(f"Sentence {p} {s} of the document." for s in range(9)) for p in range(40)))
    with Index.open(tmp_path / "x.index", embedder, create=True, chunk_tokens=60, overlap_tokens=10) as index:
        index.add([doc])
        rows = index._store.conn.execute("SELECT tokens, text FROM chunks").fetchall()
        assert len(rows) > 10 and all(t == len(text.split()) <= 60 for t, text in rows)
        assert embedder.calls == -(-len(rows) // 32)  # embedded in batches of 32


# -- files that are not (good) indexes ---------------------------------------------------------------
def test_missing_folder_and_foreign_files(tmp_path):
    with pytest.raises(DocumentIndexError, match="no index at .*edge-sdk index add"):
        Index.open(tmp_path / "missing.index")
    assert not (tmp_path / "missing.index").exists()  # opening without create makes nothing
    with pytest.raises(DocumentIndexError, match="is a folder"):
        Index.open(tmp_path)
    (tmp_path / "text.index").write_text("hello")
    with pytest.raises(DocumentIndexError, match="not an SQLite file"):
        Index.open(tmp_path / "text.index")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    with pytest.raises(DocumentIndexError, match="SQLite database but not a document index"):
        Index.open(tmp_path / "other.db")
    (tmp_path / "empty.index").write_bytes(b"")
    with pytest.raises(DocumentIndexError, match="empty database"):
        Index.open(tmp_path / "empty.index")
    with pytest.raises(DocumentIndexError, match="folder .* does not exist"):
        Index.open(tmp_path / "no" / "x.index", FakeEmbedder(), create=True)


def test_future_schema_and_damage(tmp_path, docs, embedder):
    path = tmp_path / "x.index"
    with Index.open(path, embedder, create=True) as index:
        index.add([docs])
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=2")
    db.commit()
    with pytest.raises(DocumentIndexError, match="newer edge-sdk .index schema 2; this one reads 1"):
        Index.open(path)
    db.execute("PRAGMA user_version=1")
    db.execute("UPDATE vectors SET vector = x'00' WHERE chunk_id = 1")
    db.commit()
    with Index.open(path, embedder) as index, pytest.raises(DocumentIndexError, match="vector is not 64 float32"):
        index.search("rent")
    db.execute("UPDATE meta SET value = 'not json' WHERE key = 'dim'")
    db.commit()
    with pytest.raises(DocumentIndexError, match="meta is not JSON"):
        Index.open(path)
    db.close()


def test_a_truncated_file_is_an_error_not_a_traceback(tmp_path, docs, embedder):
    path = tmp_path / "x.index"
    with Index.open(path, embedder, create=True) as index:
        index.add([docs])
        for i in range(5):  # make it a few pages long
            (docs / f"more{i}.txt").write_text(f"More text number {i}. " * 400)
        index.add([docs])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentIndexError):
        with Index.open(path, embedder) as index:
            index.search("rent")
            index.files()
            assert index.check() == []
    junk = bytearray(data)
    junk[4096:8192] = b"\xff" * 4096  # a smashed page
    path.write_bytes(bytes(junk))
    with pytest.raises(DocumentIndexError):
        with Index.open(path, embedder) as index:
            index.search("rent")
            assert index.check() == []
