"""edge-sdk publish: a content-addressed static folder, versions kept side by side, never half-written, and
servable as it is by a web server we did not write (Python's http.server)."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from edge_sdk.deploy.publish import publish
from edge_sdk.errors import OutputExistsError, StoreError
from edge_sdk.runtime.store import layout

from .conftest import make_store, manifest_files


def _blobs(folder):
    return {p.name: p for p in (folder / "blobs").rglob("*") if p.is_file()}


def test_the_published_folder(tmp_path, bundles):
    out = tmp_path / "site"
    first = publish(bundles["v1"], out)
    manifest = (bundles["v1"] / "edge_manifest.json").read_bytes()
    version = hashlib.sha256(manifest).hexdigest()[:12]  # the default version: the manifest's hash
    assert first["version"] == version and first["name"] == json.loads(manifest)["name"]
    blobs = _blobs(out)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == sha for sha, p in blobs.items())  # content-addressed
    files = manifest_files(bundles["v1"])
    assert set(blobs) == {f["sha256"] for f in files.values()} | {hashlib.sha256(manifest).hexdigest()}
    listing = json.loads((out / layout.listing_path(first["name"], version)).read_text())
    assert listing["files"] == files and listing["signature"] is None
    index = layout.check_index(json.loads((out / "index.json").read_text()), "index")
    assert index["models"][first["name"]]["latest"] == version
    # A second version: the weights are not written again; the first version stays published.
    second = publish(bundles["v2"], out, name=first["name"], version="v2")
    assert (second["new_files"], second["reused_files"]) == (1, len(files) - 1)
    assert len(_blobs(out)) == len(blobs) + 2  # the changed template and the new manifest
    index = json.loads((out / "index.json").read_text())
    assert set(index["models"][first["name"]]["versions"]) == {version, "v2"}
    assert index["models"][first["name"]]["latest"] == "v2"
    assert json.loads((out / layout.listing_path(first["name"], version)).read_text()) == listing
    # --not-latest keeps the latest where it was.
    third = publish(bundles["broken"], out, name=first["name"], version="v3", latest=False)
    assert not third["latest"] and json.loads((out / "index.json").read_text())["models"][first["name"]]["latest"] == "v2"


def test_publish_refuses_what_would_break_devices(tmp_path, bundles):
    out = tmp_path / "site"
    publish(bundles["v1"], out, name="tiny", version="1")
    again = publish(bundles["v1"], out, name="tiny", version="1")
    assert again["unchanged"] and again["new_files"] == 0
    with pytest.raises(OutputExistsError, match="already published in .* with other contents.*new --version"):
        publish(bundles["v2"], out, name="tiny", version="1")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(OutputExistsError, match="is not a folder made by `edge-sdk publish`"):
        publish(bundles["v1"], other)
    with pytest.raises(StoreError, match="is not a valid name.*--name"):
        publish(bundles["v1"], out, name="../escape")
    with pytest.raises(StoreError, match="is not a valid name.*--version"):
        publish(bundles["v1"], out, name="tiny", version="1/2")
    stale = tmp_path / "stale"
    import shutil

    from edge_sdk.cli import main

    shutil.copytree(bundles["v1"], stale)
    assert main(["keygen", "-o", str(tmp_path / "k")]) == 0
    assert main(["sign", str(stale), "--key", str(tmp_path / "k")]) == 0
    shutil.copy(bundles["v2"] / "edge_manifest.json", stale / "edge_manifest.json")  # changed after signing
    shutil.copy(bundles["v2"] / "chat_template.jinja", stale / "chat_template.jinja")
    with pytest.raises(StoreError, match="does not sign this manifest"):
        publish(stale, out, name="tiny", version="9")


def test_a_publish_that_dies_leaves_the_previous_index(tmp_path, bundles, monkeypatch):
    out = tmp_path / "site"
    publish(bundles["v1"], out, name="tiny", version="1")
    index = (out / "index.json").read_bytes()
    import edge_sdk.deploy.publish as pub

    real = os.replace

    def die_on_the_index(src, dst):
        if str(dst).endswith("index.json"):
            raise KeyboardInterrupt  # killed at the last step
        return real(src, dst)

    monkeypatch.setattr(pub.os, "replace", die_on_the_index)
    with pytest.raises(KeyboardInterrupt):
        publish(bundles["v2"], out, name="tiny", version="2")
    monkeypatch.undo()
    assert (out / "index.json").read_bytes() == index  # devices still see version 1 only, complete
    assert not [p for p in out.rglob("*.tmp-*")]  # no temporary file left behind
    assert publish(bundles["v2"], out, name="tiny", version="2")["new_files"] == 0  # its blobs were already there


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_http_server_serves_the_folder_as_it_is(tmp_path, bundles):
    """A static server we did not write (no Range support: a cut would restart the file) serves a pull."""
    out = tmp_path / "www" / "models"
    publish(bundles["v1"], out, name="tiny", version="1")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d",
                             str(tmp_path / "www")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.1)
        store = make_store(tmp_path / "store")
        result = store.pull(f"http://127.0.0.1:{port}/models", "tiny")  # no trailing slash: still the folder
        assert result.active and result.files_downloaded == len(manifest_files(bundles["v1"]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
