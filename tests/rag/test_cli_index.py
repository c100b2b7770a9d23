"""edge-sdk index add / ls / rm / search, with the fake embedder in place of edge_sdk.load."""
from __future__ import annotations

import json

import pytest

import edge_sdk
from edge_sdk.cli import main

from .fake_embedder import FakeEmbedder


@pytest.fixture
def bundles(tmp_path, monkeypatch):
    """Two 'embedder bundles' (folders): minilm and other (a different model); edge_sdk.load gives fakes."""
    for name in ("minilm", "other", "llm"):
        (tmp_path / name).mkdir()
    loads = []

    def load(path, *args, **kwargs):
        loads.append(str(path))
        name = str(path).rstrip("/").rsplit("/", 1)[1]
        if name == "llm":  # a generation bundle: edge_sdk.load refuses it when asked for an embedder
            if kwargs.get("kind") == "embedder":
                from edge_sdk.errors import BundleError

                raise BundleError(f"{path} is a language-model bundle, not an embedder")
            return object()
        return FakeEmbedder(name=name, seed=name, bundle_dir=path)

    monkeypatch.setattr(edge_sdk, "load", load)
    return tmp_path, loads


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_add_ls_search_rm(capsys, tmp_path, docs, bundles):
    root, loads = bundles
    index = tmp_path / "docs.index"
    code, out, err = run(capsys, "index", "add", index, docs, "--embedder", root / "minilm")
    assert code == 0, err
    assert out.startswith("3 added, 0 updated, 0 unchanged, 0 failed (3 chunks embedded; 3 in the index)")
    assert "creating" in err and "[3/3]" in err  # progress on stderr

    code, out, err = run(capsys, "index", "add", index, docs, "--json")  # the recorded embedder is loaded
    report = json.loads(out)
    assert code == 0 and len(report["unchanged"]) == 3 and report["chunks"] == 0
    assert loads == [str(root / "minilm"), str((root / "minilm").resolve())]

    code, out, err = run(capsys, "index", "ls", index)
    assert code == 0 and "3 files, 3 chunks; embedder minilm (64 dims, chunks of 200 tokens)" in out
    assert "rent.md" in out and "router.rst" in out
    listing = json.loads(run(capsys, "index", "ls", index, "--json")[1])
    assert listing["embedder"]["name"] == "minilm" and len(listing["files"]) == 3 and listing["chunks"] == 3

    code, out, err = run(capsys, "index", "search", index, "when is the rent due", "-k", "2")
    assert code == 0 and out.startswith("1. ") and "rent.md#0" in out.splitlines()[0]
    hits = json.loads(run(capsys, "index", "search", index, "reset the router", "-k", "1", "--json")[1])["hits"]
    assert len(hits) == 1 and hits[0]["path"].endswith("router.rst") and set(hits[0]) == {
        "path", "chunk_no", "text", "score", "start", "end"}

    code, out, err = run(capsys, "index", "rm", index, docs / "notes" / "cats.txt", docs / "nope.txt")
    assert code == 1 and "1 file(s) removed" in out and "not in the index" in err and "nope.txt" in err
    (docs / "notes" / "rent.md").unlink()  # deleted from disk: adding its folder again forgets it
    code, out, err = run(capsys, "index", "add", index, docs)  # cats.txt, still on disk, comes back
    assert code == 0 and out.startswith("1 added, 0 updated, 1 unchanged, 1 removed (gone from disk), 0 failed"), out
    removed = json.loads(run(capsys, "index", "rm", index, docs / "notes", "--json")[1])
    assert len(removed["removed"]) == 2 and removed["not_found"] == []
    assert "0 files, 0 chunks" in run(capsys, "index", "ls", index)[1]
    assert "the index is empty" in run(capsys, "index", "search", index, "rent")[1]


def test_a_failed_file_is_exit_1_and_the_rest_is_indexed(capsys, tmp_path, docs, bundles):
    root, _ = bundles
    (docs / "latin.txt").write_bytes(b"caf\xe9")
    code, out, err = run(capsys, "index", "add", tmp_path / "x.index", docs, tmp_path / "missing.md",
                         "--embedder", root / "minilm", "--quiet")
    assert code == 1 and err.strip() == "error: 2 file(s) could not be indexed (the others were)"
    assert out.startswith("3 added, 0 updated, 0 unchanged, 2 failed")
    assert "failed: " in out and "latin.txt: not UTF-8 text" in out and "missing.md: no such file or folder" in out


def test_creating_needs_an_embedder_and_others_are_refused(capsys, tmp_path, docs, bundles):
    root, loads = bundles
    index = tmp_path / "x.index"
    code, _, err = run(capsys, "index", "add", index, docs)
    assert code == 2 and "creating it needs --embedder DIR" in err and not index.exists()
    code, _, err = run(capsys, "index", "add", index, docs, "--embedder", root / "llm")
    assert code == 2 and "not an embedder" in err
    assert run(capsys, "index", "add", index, docs, "--embedder", root / "minilm", "--quiet")[0] == 0
    code, _, err = run(capsys, "index", "add", index, docs, "--embedder", root / "other")
    assert code == 2 and "made with the embedder 'minilm'" in err and "not 'other'" in err
    code, _, err = run(capsys, "index", "search", index, "rent", "--embedder", root / "other")
    assert code == 2 and "made with the embedder 'minilm'" in err
    (root / "minilm").rmdir()  # the recorded bundle is gone
    code, _, err = run(capsys, "index", "search", index, "rent")
    assert code == 2 and "which is not there any more; pass --embedder DIR" in err


def test_bad_index_paths(capsys, tmp_path, bundles):
    root, loads = bundles
    (tmp_path / "notes.txt").write_text("hello")
    for argv, words in [
        (["ls", tmp_path / "missing.index"], "no index at"),
        (["search", tmp_path / "missing.index", "q"], "no index at"),
        (["rm", tmp_path / "missing.index", "a"], "no index at"),
        (["ls", tmp_path], "is a folder"),
        (["ls", tmp_path / "notes.txt"], "not a document index (not an SQLite file)"),
        (["add", tmp_path / "notes.txt", tmp_path / "notes.txt", "--embedder", root / "minilm"], "not an SQLite"),
        (["add", tmp_path, tmp_path / "notes.txt", "--embedder", root / "minilm"], "is a folder"),
    ]:
        code, out, err = run(capsys, "index", *argv)
        assert code == 2 and err.startswith("error: ") and words in err and len(err.splitlines()) == 1, err
    assert loads == []  # a bad INDEX is reported before any embedder loads
    with pytest.raises(SystemExit) as e:
        main(["index", "search", str(tmp_path / "x"), "q", "-k", "0"])
    assert e.value.code == 2 and "-k: must be an integer >= 1" in capsys.readouterr().err


def test_help_and_lazy_imports():
    import subprocess
    import sys

    code = ("import sys; from edge_sdk.cli import build_parser; build_parser(); "
            "bad = [m for m in ('numpy', 'sqlite3', 'edge_sdk.runtime.rag', 'onnxruntime') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "edge_sdk", "index", "add", "--help"], capture_output=True,
                               text=True).stdout
    assert "--embedder DIR" in help_text and "Unchanged files are skipped" in " ".join(help_text.split())
