"""Real processes: a pull killed at the activation point (and at random moments) leaves a store that loads the old
version or the new one, never neither; two pulls at once (two processes) both succeed on one consistent store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edge_sdk
from edge_sdk.deploy.publish import publish

from .conftest import make_store, manifest_files

PULL = r"""
import json, os, signal, sys
from edge_sdk.runtime.store import activate
from edge_sdk.store import Store

root, url, version, kill = sys.argv[1], sys.argv[2], sys.argv[3] or None, sys.argv[4]
real = activate.swap

def swap(tmp, pointer):  # the activation point: the pointer's rename
    if kill == "before-swap":
        os.kill(os.getpid(), signal.SIGKILL)
    real(tmp, pointer)
    if kill == "after-swap":
        os.kill(os.getpid(), signal.SIGKILL)

activate.swap = swap
stages = []
def progress(p):
    if not stages or stages[-1] != p.stage:
        stages.append(p.stage)
result = Store(root, load_options={"threads": 1}).pull(url, "tiny", version=version, progress=progress)
print(json.dumps({"version": result.version, "files_downloaded": result.files_downloaded, "stages": stages,
                  "up_to_date": result.up_to_date}))
"""


def _run_pull(root: Path, url: str, version: str | None = None, kill: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PULL, str(root), url, version or "", kill],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _loads(store_root: Path) -> str:
    """Which version the store's active pointer gives, after loading it and generating a few tokens."""
    store = make_store(store_root)
    edge_sdk.load(store.path("tiny"), threads=1).generate("Hi", max_new_tokens=3)
    return store.active_version("tiny")


@pytest.fixture
def published(site, bundles):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    publish(bundles["v2"], folder, name="tiny", version="2")
    return server


@pytest.mark.parametrize("kill, expected", [("before-swap", "1"), ("after-swap", "2")])
def test_a_kill_at_the_activation_point(published, tmp_path, kill, expected):
    server = published
    root = tmp_path / "store"
    make_store(root).pull(server.models_url, "tiny", version="1")
    proc = _run_pull(root, server.models_url, "2", kill)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert _loads(root) == expected  # old or new, and it loads
    leftovers = list((root / "models" / "tiny").glob(".active.json.tmp-*"))
    assert len(leftovers) == (1 if kill == "before-swap" else 0)
    # The next pull finishes the job and cleans up after the killed one.
    result = make_store(root).pull(server.models_url, "tiny", version="2")
    assert result.files_downloaded == 0 and _loads(root) == "2"
    assert not list((root / "models" / "tiny").glob(".active.json.tmp-*"))


def test_kills_at_random_moments_never_leave_the_store_without_a_loadable_version(published, tmp_path):
    server = published
    server.behaviour.delay = 0.02  # ~0.2 s of transfer for the weights: kills land during downloads too
    root = tmp_path / "store"
    make_store(root).pull(server.models_url, "tiny", version="1")
    seen = set()
    for i, delay in enumerate((0.3, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0)):
        if i % 2:  # start over from version 1, so that every kill interrupts a pull that has work to do
            make_store(root).use("tiny", "1")
            make_store(root).remove("tiny", "2") if "2" in make_store(root).versions("tiny") else None
        proc = _run_pull(root, server.models_url, "2")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        seen.add(_loads(root))
    assert seen <= {"1", "2"}
    assert make_store(root).pull(server.models_url, "tiny", version="2").active and _loads(root) == "2"


def test_two_pulls_at_once(published, bundles, tmp_path):
    server = published
    server.behaviour.delay = 0.05  # the first pull holds the store for a while
    root = tmp_path / "store"
    procs = [_run_pull(root, server.models_url, "1") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    results = sorted((json.loads(o[0]) for o in outs), key=lambda r: r["up_to_date"])
    assert results[0]["files_downloaded"] == len(manifest_files(bundles["v1"])) and not results[0]["up_to_date"]
    assert results[1]["up_to_date"] and "waiting" in results[1]["stages"]  # it waited, then found it all there
    weights = manifest_files(bundles["v1"])["model.onnx.data"]["sha256"]
    assert len(server.blob_hits(weights)) == 1  # downloaded once for both
    assert _loads(root) == "1"
    # Two different versions at once: both complete, one of them is active, both are installed and load.
    procs = [_run_pull(root, server.models_url, v) for v in ("2", "1")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    store = make_store(root)
    assert store.versions("tiny") == ["1", "2"] and store.active_version("tiny") in {"1", "2"}
    for v in ("1", "2"):
        edge_sdk.load(store.version_dir("tiny", v), threads=1)
    assert not (root / ".staging").exists() or not list((root / ".staging").iterdir())
    assert not list((root / ".incoming").iterdir())


def test_the_lock_is_released_when_its_holder_dies(published, tmp_path):
    server = published
    server.behaviour.delay = 0.2
    root = tmp_path / "store"
    proc = _run_pull(root, server.models_url, "1")
    deadline = time.time() + 60
    while not any("/blobs/" in h.path for h in server.hits):  # it holds the lock once it fetches files
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    server.behaviour.delay = 0
    store = make_store(root, lock_timeout=5)
    assert store.pull(server.models_url, "tiny", version="1").active  # no stale lock, no waiting
