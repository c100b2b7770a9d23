"""Publish -> pull -> load, updates that download only what changed, and every way a pull can go wrong leaving the
store as it was (the active version still loads, a clear StoreError)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

import edge_sdk
from edge_sdk.deploy.publish import publish
from edge_sdk.errors import StoreError
from edge_sdk.store import Store

from .conftest import make_store, manifest_files, store_state


def _answer(bundle) -> str:
    return edge_sdk.load(bundle, threads=1).generate("Hello there", max_new_tokens=8)


def test_pull_then_load_the_active_version(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    store = make_store(tmp_path / "store")
    events = []
    result = store.pull(server.models_url, "tiny", progress=events.append)
    assert result.active and result.version == "1" and not result.up_to_date and result.previous is None
    files = manifest_files(bundles["v1"])
    assert result.files_downloaded == len(files) and result.bytes_downloaded == sum(f["bytes"] for f in files.values())
    assert result.smoke is not None  # the version answered its smoke prompt before it became active
    path = Store(tmp_path / "store").path("tiny")
    assert path == tmp_path / "store" / "models" / "tiny" / "versions" / "1"
    assert _answer(path) == _answer(bundles["v1"])  # the pulled copy generates what the original does
    # Progress: bytes only grow, end at the total, and every file is counted.
    downloads = [e for e in events if e.stage == "download"]
    assert [e.bytes_done for e in downloads] == sorted(e.bytes_done for e in downloads)
    assert events[-1].stage == "done" and events[-1].bytes_done == events[-1].bytes_total == result.bytes_downloaded
    assert events[-1].files_done == events[-1].files_total == len(files)
    # Pulling again is a no-op over the network: the index and the listing only.
    again = store.pull(server.models_url, "tiny")
    assert again.up_to_date and again.files_downloaded == 0 and again.bytes_received < 4096


def test_an_update_downloads_only_the_changed_files(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    second = publish(bundles["v2"], folder, name="tiny", version="2")
    assert second["new_files"] == 1  # the publish shares the unchanged blobs too
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny", version="1")
    server.hits.clear()
    result = store.pull(server.models_url, "tiny")  # latest = 2
    changed = manifest_files(bundles["v2"])["chat_template.jinja"]
    assert result.version == "2" and result.previous == "1" and result.active
    assert (result.files_downloaded, result.bytes_downloaded) == (1, changed["bytes"])
    weights = manifest_files(bundles["v1"])["model.onnx.data"]["sha256"]
    assert server.blob_hits(weights) == []  # the weights were not asked for at all
    assert result.files_reused == len(manifest_files(bundles["v2"])) - 1
    # The shared weights are one file on disk (hard links), and both versions load.
    v1, v2 = store.version_dir("tiny", "1"), store.version_dir("tiny", "2")
    assert os.path.samefile(v1 / "model.onnx.data", v2 / "model.onnx.data")
    assert "v2" in (store.path("tiny") / "chat_template.jinja").read_text()
    assert [(i.version, i.active, i.previous) for i in store.list()] == [("1", False, True), ("2", True, False)]
    # Back and forth without the network.
    assert store.rollback("tiny") == "1" and store.path("tiny") == v1
    store.use("tiny", "2")
    assert store.path("tiny") == v2


def test_a_cut_download_resumes_with_a_range_request(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    weights = manifest_files(bundles["v1"])["model.onnx.data"]
    server.behaviour.drop_after[weights["sha256"]] = [100_000, 250_000]  # two cuts mid-file
    store = make_store(tmp_path / "store")
    result = store.pull(server.models_url, "tiny")
    hits = server.blob_hits(weights["sha256"])
    assert [h.start for h in hits] == [0, 100_000, 350_000]  # each attempt starts where the last one stopped
    assert sum(h.sent for h in hits) == weights["bytes"]  # not one byte twice
    assert result.bytes_downloaded == weights["bytes"] + sum(
        f["bytes"] for n, f in manifest_files(bundles["v1"]).items() if n != "model.onnx.data")
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])


def test_a_pull_that_gives_up_keeps_its_bytes_for_the_next_pull(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny")
    publish(bundles["v2"], folder, name="tiny", version="2")
    big = os.urandom(300_000)
    v3 = tmp_path / "v3"
    from .conftest import variant

    variant(bundles["v1"], v3, extra={"extra.bin": big})
    publish(v3, folder, name="tiny", version="3")
    sha = manifest_files(v3)["extra.bin"]["sha256"]
    server.behaviour.drop_after[sha] = [120_000, 0, 0, 0]
    before = store_state(store.root)
    flaky = make_store(store.root, retries=0)
    with pytest.raises(StoreError, match=r"120000 of 300000 bytes are kept and the next pull resumes"):
        flaky.pull(server.models_url, "tiny", version="3")
    assert store_state(store.root) == before and store.active_version("tiny") == "1"
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])  # the old version still loads
    assert (store.root / ".incoming" / f"{sha}.part").stat().st_size == 120_000
    server.behaviour.drop_after.clear()
    result = store.pull(server.models_url, "tiny", version="3")
    assert server.blob_hits(sha)[-1].start == 120_000
    assert result.bytes_downloaded == 300_000 - 120_000 and result.active


def test_a_dripping_server_is_cut_and_the_file_resumed(site, bundles, tmp_path, monkeypatch):
    import edge_sdk.runtime.store.fetch as fetch

    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    monkeypatch.setattr(fetch, "SLOW_WINDOW", 2.0)  # 30 s in production
    weights = manifest_files(bundles["v1"])["model.onnx.data"]
    server.behaviour.drip.add(weights["sha256"])  # 2 KB/s: under the 10 KB/s the test asks for
    monkeypatch.setattr(fetch, "MIN_RATE", 10_000)
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny")
    hits = server.blob_hits(weights["sha256"])
    assert len(hits) == 2 and 0 < hits[1].start < 20_000  # cut after a few seconds of dripping, then resumed
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])


def test_a_server_without_ranges_is_read_from_the_start_again(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    weights = manifest_files(bundles["v1"])["model.onnx.data"]
    server.behaviour.drop_after[weights["sha256"]] = [100_000]
    server.behaviour.ignore_range = True
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny")
    assert [h.sent for h in server.blob_hits(weights["sha256"])] == [100_000, weights["bytes"]]
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])


def test_a_tampered_file_is_refused_and_nothing_changes(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    publish(bundles["v2"], folder, name="tiny", version="2")
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny", version="1")
    before = store_state(store.root)
    changed = manifest_files(bundles["v2"])["chat_template.jinja"]
    evil = b"{{ raise_exception('pwned') }}".ljust(changed["bytes"], b" ")  # same size, other bytes
    server.behaviour.tamper[changed["sha256"]] = evil
    with pytest.raises(StoreError, match="does not match its sha256.*tampered"):
        store.pull(server.models_url, "tiny")
    assert store_state(store.root) == before and store.active_version("tiny") == "1"
    assert list((store.root / ".incoming").iterdir()) == []  # the bad bytes are not kept
    assert not (store.root / ".staging").exists() or list((store.root / ".staging").iterdir()) == []
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])
    # A manifest swapped on the way (the file table is what every file is checked against) is refused too.
    server.behaviour.tamper.clear()
    v2_manifest = (bundles["v2"] / "edge_manifest.json").read_bytes()
    server.behaviour.tamper[_sha(v2_manifest)] = v2_manifest.replace(b'"tiny', b'"evil')
    with pytest.raises(StoreError, match="manifest.*does not match its published size and sha256"):
        store.pull(server.models_url, "tiny")
    # A file longer than published is cut off, not written to the end of the disk.
    server.behaviour.tamper.clear()
    server.behaviour.tamper[changed["sha256"]] = (bundles["v2"] / "chat_template.jinja").read_bytes() + b"x" * 10_000
    with pytest.raises(StoreError, match="longer than its published size"):
        store.pull(server.models_url, "tiny")
    assert store_state(store.root) == before
    server.behaviour.tamper.clear()
    assert store.pull(server.models_url, "tiny").version == "2"  # the honest server works at once


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_version_that_fails_its_smoke_prompt_rolls_back(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    publish(bundles["broken"], folder, name="tiny", version="2")  # every hash right, no usable tokenizer
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny", version="1")
    before = store_state(store.root)
    with pytest.raises(StoreError, match=r"rolled back: tiny 2 did not pass its smoke prompt .*still using tiny 1"):
        store.pull(server.models_url, "tiny")
    assert store_state(store.root) == before  # the broken version was removed, the pointer never moved
    assert store.versions("tiny") == ["1"]
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])


def test_disk_space_is_checked_before_downloading(site, bundles, tmp_path, monkeypatch):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    import edge_sdk.runtime.store.pull as pull_module

    real = shutil.disk_usage
    monkeypatch.setattr(pull_module.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=pull_module.HEADROOM + 1000))
    store = make_store(tmp_path / "store")
    with pytest.raises(StoreError, match=r"not enough disk space for tiny 1: it needs 0\.6 MB more .*Nothing was "
                                         r"downloaded"):
        store.pull(server.models_url, "tiny")
    manifest_sha = _sha((bundles["v1"] / "edge_manifest.json").read_bytes())
    assert [h.path.rsplit("/", 1)[1] for h in server.hits if "/blobs/" in h.path] == [manifest_sha]  # nothing else
    assert store_state(store.root) == {}


def test_a_full_disk_mid_download_leaves_the_store_as_it_was(site, bundles, tmp_path, monkeypatch):
    """ENOSPC simulated: the write of the third 64 KB block of the weights fails as a full disk does."""
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    v3 = tmp_path / "v3"
    from .conftest import variant

    variant(bundles["v1"], v3, extra={"extra.bin": os.urandom(400_000)})
    publish(v3, folder, name="tiny", version="3")
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny", version="1")
    before = store_state(store.root)
    import errno

    import edge_sdk.runtime.store.fetch as fetch

    calls = {"n": 0}
    real_write = fetch._write

    def write(f, block, part):
        calls["n"] += 1
        if calls["n"] == 3:
            f.write(block[:1000])
            f.flush()
            raise_enospc(f, part)
        return real_write(f, block, part)

    def raise_enospc(f, part):
        class Full:
            def write(self, _):
                raise OSError(errno.ENOSPC, "No space left on device")

        real_write(Full(), b"x", part)

    monkeypatch.setattr(fetch, "_write", write)
    with pytest.raises(StoreError, match=r"the disk filled up while writing .*Nothing was changed"):
        store.pull(server.models_url, "tiny", version="3")
    assert store_state(store.root) == before
    assert list((store.root / ".incoming").iterdir()) == []  # partial and completed downloads of this pull: gone
    assert _answer(store.path("tiny")) == _answer(bundles["v1"])


def test_pull_refuses_what_a_store_cannot_use(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    store = make_store(tmp_path / "store")
    with pytest.raises(StoreError, match=r"has no model 'other' \(it has: tiny\)"):
        store.pull(server.models_url, "other")
    with pytest.raises(StoreError, match=r"has no version '9' of tiny \(it has: 1\)"):
        store.pull(server.models_url, "tiny", version="9")
    with pytest.raises(StoreError, match="is not a valid name"):
        store.pull(server.models_url, "../tiny")
    with pytest.raises(StoreError, match="not an http"):
        store.pull("file:///etc/", "tiny")
    with pytest.raises(StoreError, match="must not carry a user name or password"):
        store.pull(f"http://me:secret@127.0.0.1:{server.port}/models/", "tiny")
    with pytest.raises(StoreError, match="HTTP 404"):
        store.pull(server.url + "nothing-here/", "tiny")
    with pytest.raises(StoreError, match="no active version of 'tiny'"):
        store.path("tiny")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot use .* as a store"):  # a store where a file is
        make_store(tmp_path / "file" / "store").pull(server.models_url, "tiny")
    # The same version with other contents is never installed over the one here.
    store.pull(server.models_url, "tiny")
    other = tmp_path / "site2" / "models"
    other.mkdir(parents=True)
    publish(bundles["v2"], other, name="tiny", version="1")
    shutil.rmtree(folder)
    shutil.copytree(other, folder)
    with pytest.raises(StoreError, match="installed here with other contents"):
        store.pull(server.models_url, "tiny")


def test_use_remove_and_gc(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    publish(bundles["v2"], folder, name="tiny", version="2")
    publish(bundles["v1"], folder, name="tiny", version="3")  # same contents as 1: its blobs are all there
    store = make_store(tmp_path / "store")
    for v in ("1", "2", "3"):
        store.pull(server.models_url, "tiny", version=v)
    assert store.active_version("tiny") == "3"
    with pytest.raises(StoreError, match="is the active version"):
        store.remove("tiny", "3")
    with pytest.raises(StoreError, match="not installed"):
        store.use("tiny", "7")
    # 1 is not needed, but its files are hard links shared with 3: only its own manifest copy is freed.
    assert store.gc() == (bundles["v1"] / "edge_manifest.json").stat().st_size
    assert store.versions("tiny") == ["2", "3"]  # 2 is the previous version and stays
    assert store.rollback("tiny") == "2"
    store.remove("tiny", "3")
    assert store.versions("tiny") == ["2"] and store.path("tiny") == store.version_dir("tiny", "2")
    # A damaged pointer is a clear error, and choosing a version repairs it.
    (store.model_dir("tiny") / "active.json").write_text("{not json")
    with pytest.raises(StoreError, match="active.json is damaged .*--use tiny VERSION"):
        store.path("tiny")
    store.use("tiny", "2")
    assert store.path("tiny") == store.version_dir("tiny", "2")
    assert store.remove("tiny") > 500_000  # the whole model; its last copy of the weights is freed
    assert store.list() == []


def test_the_cli_pulls_lists_and_reports_errors_without_a_traceback(site, bundles, tmp_path, capsys):
    from edge_sdk.cli import main

    folder, server = site
    assert main(["publish", str(bundles["v1"]), "--output", str(folder), "--name", "tiny", "--version", "1",
                 "--quiet"]) == 0
    assert "tiny 1 (latest): 5 new files" in capsys.readouterr().out
    store = str(tmp_path / "store")
    assert main(["pull", server.models_url, "tiny", "--store", store, "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert "tiny 1: downloaded 5 files" in out and "active" in out and "[" in err  # the progress bar on stderr
    assert main(["models", "--store", store]) == 0
    assert " * tiny" in capsys.readouterr().out
    assert main(["models", "--store", store, "--path", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "store" / "models" / "tiny" / "versions" / "1")
    assert main(["models", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["active"] is True
    assert main(["pull", server.models_url, "nope", "--store", store, "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and "has no model 'nope'" in err and "Traceback" not in err
