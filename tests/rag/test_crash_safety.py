"""A killed `add` leaves a valid index: each file's chunks are committed in one transaction."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.rag import Index, chunk_text

from .fake_embedder import FakeEmbedder

HERE = Path(__file__).parent
FILES = 30


@pytest.fixture
def many(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(FILES):  # 10 chunks each at 20 tokens
        (folder / f"doc{i:02}.txt").write_text(_text(i))
    index = tmp_path / "x.index"
    Index.open(index, FakeEmbedder(), create=True, chunk_tokens=20, overlap_tokens=5).close()
    return index, folder


def _text(i: int) -> str:
    return " ".join(f"File {i} sentence {s} says hello." for s in range(30))


CHUNKS = len(chunk_text(_text(0), FakeEmbedder().count_tokens, 20, 5))


def _run(index, folder, mode):
    return subprocess.Popen([sys.executable, str(HERE / "slow_add.py"), str(index), str(folder), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_after_kill(index, folder, at_least):
    with Index.open(index, FakeEmbedder()) as ix:
        assert ix.check() == []
        assert ix._store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done = {f.path for f in ix.files()}
        assert at_least <= len(done) < FILES
        assert all(f.chunks == CHUNKS for f in ix.files())  # every listed file has all its chunks
        embedder = FakeEmbedder()
        ix.embedder = embedder
        report = ix.add([folder])
        assert set(report.unchanged) == done and len(report.added) == FILES - len(done) and report.ok
        assert embedder.texts == CHUNKS * (FILES - len(done))  # the files already indexed were not embedded again
        assert ix.check() == [] and len(ix) == CHUNKS * FILES


def test_sigkill_mid_add_leaves_a_valid_index(many):
    index, folder = many
    proc = _run(index, folder, "slow")
    try:
        for line in proc.stdout:
            if line.strip() == "done 5":
                break
        else:
            pytest.fail(f"the indexing process ended early: {proc.stderr.read()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _check_after_kill(index, folder, at_least=5)


def test_sigkill_inside_a_transaction_is_rolled_back(many):
    index, folder = many
    proc = _run(index, folder, "kill-in-commit")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert out.split() == ["done", "1", "done", "2", "done", "3"]
    assert Path(str(index) + "-journal").exists()  # a hot journal: the 4th file's transaction, not committed
    _check_after_kill(index, folder, at_least=3)
    assert not Path(str(index) + "-journal").exists()  # rolled back on the next open
