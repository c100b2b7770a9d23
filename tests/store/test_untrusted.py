"""A server is untrusted: hostile indexes and manifests, names pointing outside the store, oversized or malformed
JSON, wrong signatures, redirects that would carry a token elsewhere. Each is a clear StoreError with nothing
written outside the store and the active version untouched."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from edge_sdk.deploy.publish import publish
from edge_sdk.errors import StoreError
from edge_sdk.runtime.store import layout

from .conftest import make_store, manifest_files, store_state


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(folder: Path, data: bytes) -> str:
    sha = _sha(data)
    path = folder / layout.blob_path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha


def hostile(folder: Path, name: str, version: str, change_manifest=None, change_listing=None, files=None) -> None:
    """Rewrite a published version as a hostile server would, keeping every hash consistent: the manifest changed
    by `change_manifest(manifest)`, new blobs for `files` {name: bytes}, the listing and index updated."""
    listing_path = folder / layout.listing_path(name, version)
    listing = json.loads(listing_path.read_text())
    manifest = json.loads((folder / layout.blob_path(listing["manifest"]["sha256"])).read_text())
    for rel, data in (files or {}).items():
        manifest["files"][rel] = {"sha256": _put(folder, data), "bytes": len(data)}
    if change_manifest:
        change_manifest(manifest)
    data = json.dumps(manifest).encode()
    listing["manifest"] = {"sha256": _put(folder, data), "bytes": len(data)}
    listing["files"] = manifest["files"]
    if change_listing:
        change_listing(listing)
    listing_path.write_text(json.dumps(listing))
    index = json.loads((folder / "index.json").read_text())
    index["models"][name]["versions"][version]["manifest_sha256"] = listing["manifest"]["sha256"]
    (folder / "index.json").write_text(json.dumps(index))


@pytest.fixture
def pulled(site, bundles, tmp_path):
    """v1 published and pulled (active); v2 published for the hostile edits. -> (folder, server, store, state)."""
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    publish(bundles["v2"], folder, name="tiny", version="2")
    store = make_store(tmp_path / "store")
    store.pull(server.models_url, "tiny", version="1")
    return folder, server, store, store_state(store.root)


def _outside(tmp_path: Path) -> set[str]:
    return {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("evil", ["../../../evil.txt", "/tmp/evil-edge-sdk-store.txt", "a/../../../../evil.txt",
                                  "..", "a\\..\\evil.txt", "C:/evil.txt", "edge_manifest.sig"])
def test_file_names_pointing_outside_the_store_are_refused(pulled, tmp_path, evil):
    folder, server, store, state = pulled
    names = _outside(tmp_path)
    hostile(folder, "tiny", "2", files={evil: b"pwned\n"})
    with pytest.raises(StoreError, match="not a plain file name inside the bundle|signature's place"):
        store.pull(server.models_url, "tiny")
    assert _outside(tmp_path) == names and not Path("/tmp/evil-edge-sdk-store.txt").exists()
    assert not (store.root / "evil.txt").exists() and not (store.root / ".staging" / "evil.txt").exists()
    assert store_state(store.root) == state and store.active_version("tiny") == "1"
    assert not any("/blobs/" in h.path and h.path.endswith(_sha(b"pwned\n")) for h in server.hits)  # not even fetched


def test_a_manifest_that_names_other_files_than_its_listing_is_refused(pulled):
    folder, server, store, state = pulled

    def sneak(listing):  # the listing shows harmless files, the manifest (what is checked) has one more
        listing["files"] = {k: v for k, v in listing["files"].items() if k != "extra.txt"}

    hostile(folder, "tiny", "2", files={"extra.txt": b"x"}, change_listing=sneak)
    with pytest.raises(StoreError, match="the listing and the manifest name different files"):
        store.pull(server.models_url, "tiny")
    assert store_state(store.root) == state


@pytest.mark.parametrize("index, match", [
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b'{"format": "edge-store-index", "schema_version": NaN, "models": {}}', "not valid JSON"),
    (b'\xff\xfe{}', "not valid JSON"),
    (json.dumps({"format": "edge-store-index", "schema_version": 1, "models": {"../up": {}}}).encode(),
     "is not a valid name"),
    (json.dumps({"format": "edge-store-index", "schema_version": 1, "models": {"tiny": {"latest": "..", "versions": {
        "..": {"manifest_sha256": "0" * 64, "bytes": 1}}}}}).encode(), "is not a valid name"),
    (json.dumps({"format": "edge-store-index", "schema_version": 1, "models": {"tiny": {"latest": "1", "versions": {
        "1": {"manifest_sha256": "../../x", "bytes": 1}}}}}).encode(), "must be a sha256"),
    (json.dumps({"format": "edge-store-index", "schema_version": 1, "models": {"tiny": {"latest": "1", "versions": {
        "1": {"manifest_sha256": "0" * 64, "bytes": -5}}}}}).encode(), "must be a size in bytes"),
    (json.dumps({"format": "something-else"}).encode(), "not an edge-sdk store file"),
    (json.dumps({"format": "edge-store-index", "schema_version": 2, "models": {}}).encode(), "upgrade edge-sdk"),
    (b" " * (layout.MAX_INDEX_BYTES + 10), "more than"),
])
def test_malformed_or_hostile_indexes(pulled, index, match):
    folder, server, store, state = pulled
    (folder / "index.json").write_bytes(index)
    with pytest.raises(StoreError, match=match):
        store.pull(server.models_url, "tiny")
    assert store_state(store.root) == state


def test_oversized_documents_are_not_read_to_the_end(pulled, monkeypatch):
    folder, server, store, state = pulled
    size = (folder / layout.listing_path("tiny", "2")).stat().st_size
    monkeypatch.setattr(layout, "MAX_LISTING_BYTES", size - 1)
    with pytest.raises(StoreError, match=rf"the listing .* is {size} bytes, more than the {size - 1} allowed"):
        store.pull(server.models_url, "tiny")
    monkeypatch.undo()
    hostile(folder, "tiny", "2", change_listing=lambda listing: listing["files"].update(
        {f"f{i}": {"sha256": "0" * 64, "bytes": 1} for i in range(layout.MAX_FILES + 1)}))
    with pytest.raises(StoreError, match="at most 10000 file names"):
        store.pull(server.models_url, "tiny")
    assert store_state(store.root) == state


def test_a_planted_symlink_in_the_store_is_not_followed(pulled, tmp_path):
    folder, server, store, state = pulled
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    sha = manifest_files(Path(str(pulled[2].version_dir("tiny", "1"))))["chat_template.jinja"]["sha256"]
    v2_sha = json.loads((folder / layout.listing_path("tiny", "2")).read_text())["files"]["chat_template.jinja"]["sha256"]
    assert sha != v2_sha
    (store.root / ".incoming" / f"{v2_sha}.part").symlink_to(target)
    with pytest.raises(StoreError, match="cannot write"):
        store.pull(server.models_url, "tiny")
    assert target.read_text() == "keep me\n" and store_state(store.root) == state


def _keys(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from edge_sdk.cli import main

    assert main(["keygen", "-o", str(tmp_path / name)]) == 0
    return tmp_path / name, tmp_path / f"{name}.pub"


def test_signatures(site, bundles, tmp_path, capsys):
    folder, server = site
    a, a_pub = _keys(tmp_path, "a.key")
    b, b_pub = _keys(tmp_path, "b.key")
    capsys.readouterr()
    publish(bundles["v1"], folder, name="tiny", version="1", sign_key=a)
    publish(bundles["v2"], folder, name="tiny", version="2", sign_key=b)  # the wrong publisher
    publish(bundles["v1"], folder, name="tiny", version="3")  # unsigned
    store = make_store(tmp_path / "store", trusted_keys=[a_pub])
    first = store.pull(server.models_url, "tiny", version="1")
    assert first.active
    assert store.list()[0].signed_by == a_pub.read_text().split()[1]
    import edge_sdk

    edge_sdk.load(store.path("tiny"), trusted_keys=[a_pub], threads=1)  # the signature file came along
    state = store_state(store.root)
    server.hits.clear()
    with pytest.raises(StoreError, match="is signed by key .* which is not one of the trusted keys"):
        store.pull(server.models_url, "tiny", version="2")
    weights = manifest_files(bundles["v1"])["model.onnx.data"]["sha256"]
    changed = manifest_files(bundles["v2"])["chat_template.jinja"]["sha256"]
    assert not server.blob_hits(weights) and not server.blob_hits(changed)  # refused before any file download
    with pytest.raises(StoreError, match="is not signed, but this store requires a signature"):
        store.pull(server.models_url, "tiny", version="3")
    # A server that pairs v2's manifest with v1's genuine signature (by the trusted key) is caught too.
    v1_sig = json.loads((folder / layout.listing_path("tiny", "1")).read_text())["signature"]
    hostile(folder, "tiny", "2", change_listing=lambda listing: listing.update(signature=v1_sig))
    with pytest.raises(StoreError, match="the signature does not match the manifest"):
        store.pull(server.models_url, "tiny", version="2")
    assert store_state(store.root) == state and store.active_version("tiny") == "1"
    # Without trusted keys, a store pulls what the server offers (hashes still checked).
    assert make_store(tmp_path / "open").pull(server.models_url, "tiny", version="2").active


def test_published_signatures_verify_with_the_cryptography_package(site, bundles, tmp_path, capsys):
    """The reference: `cryptography`'s Ed25519 verifies what publish --sign wrote (signature.py is ours)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_sdk.runtime.bundle.signature import DOMAIN

    folder, _ = site
    key, pub = _keys(tmp_path, "k.key")
    publish(bundles["v1"], folder, name="tiny", version="1", sign_key=key)
    listing = json.loads((folder / layout.listing_path("tiny", "1")).read_text())
    sig = json.loads((folder / layout.blob_path(listing["signature"]["sha256"])).read_text())
    manifest = (folder / layout.blob_path(listing["manifest"]["sha256"])).read_bytes()
    assert manifest == (bundles["v1"] / "edge_manifest.json").read_bytes()
    import base64

    raw = base64.b64decode(pub.read_text().split()[1])
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(sig["signature"]), DOMAIN + manifest)
    assert not (bundles["v1"] / "edge_manifest.sig").exists()  # publish --sign leaves the bundle alone


def test_redirects_keep_the_token_within_one_origin(site, bundles, tmp_path):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    other_origin = f"http://localhost:{server.port}/models/index.json"  # same socket, another origin (host name)
    server.behaviour.redirect["index.json"] = other_origin
    store = make_store(tmp_path / "store", token="s3cret")
    store.pull(f"http://127.0.0.1:{server.port}/models/", "tiny")
    index_hits = [h for h in server.hits if h.path.endswith("index.json")]
    assert [(h.host.split(":")[0], h.authorization) for h in index_hits] == [
        ("127.0.0.1", "Bearer s3cret"), ("localhost", None)]
    assert all(h.authorization == "Bearer s3cret" for h in server.hits if "127.0.0.1" in (h.host or ""))
    server.hits.clear()
    server.behaviour.redirect["index.json"] = f"http://127.0.0.1:{server.port}/models/moved/../index.json"
    os.makedirs(folder / "moved", exist_ok=True)
    store.pull(f"http://127.0.0.1:{server.port}/models/", "tiny")
    assert [h.authorization for h in server.hits if h.path.endswith("index.json")] == ["Bearer s3cret"] * 2
    server.behaviour.redirect["index.json"] = "file:///etc/passwd"
    with pytest.raises(StoreError, match="Redirection to url 'file:///etc/passwd' is not allowed"):  # urllib's own
        store.pull(f"http://127.0.0.1:{server.port}/models/", "tiny")
    server.behaviour.redirect["index.json"] = "ftp://127.0.0.1/index.json"  # urllib would follow this one
    with pytest.raises(StoreError, match="redirected to 'ftp://127.0.0.1/index.json', which is not http"):
        store.pull(f"http://127.0.0.1:{server.port}/models/", "tiny")


def test_no_redirect_from_https_to_http():
    import urllib.request

    from edge_sdk.runtime.store.fetch import _Redirects

    req = urllib.request.Request("https://models.example.com/index.json", headers={"Authorization": "Bearer x"})
    with pytest.raises(StoreError, match="from https to plain http"):
        _Redirects().redirect_request(req, None, 302, "Found", {}, "http://models.example.com/index.json")
    moved = _Redirects().redirect_request(req, None, 302, "Found", {}, "https://cdn.example.net/index.json")
    assert moved.full_url == "https://cdn.example.net/index.json" and not moved.has_header("Authorization")
    same = _Redirects().redirect_request(req, None, 302, "Found", {}, "/v2/index.json")
    assert same.full_url == "https://models.example.com/v2/index.json" and same.get_header("Authorization") == "Bearer x"
