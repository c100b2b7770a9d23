"""`edge-sdk package ... --store-url URL`: a device build that pulls its bundle on first run instead of carrying it.

At packaging time the published folder at URL is read (its index, and the version's signature when there is
one): the build is tied to the published version whose manifest is byte for byte the BUNDLE that packaging
checked (memory fit, target), and to its publisher's key when that version is signed by it. The build then
holds `store.json` (URL, name, version, manifest hash) and `publisher.pub` instead of `bundle/`, and run.sh
starts with a first-run step: if the build's store (`./store`) has no active version yet, it pulls that one
(`edge-sdk pull`, resumable, verified, smoke-tested), then runs on the store's active version. Later updates
are ordinary pulls into the same store (`edge-sdk pull URL NAME --store ./store`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

from edge_sdk.errors import DeviceBuildError, StoreError
from edge_sdk.runtime.bundle.manifest import read_manifest_bytes
from edge_sdk.runtime.bundle.signature import DOMAIN, public_key_text, verify
from edge_sdk.runtime.store import layout
from edge_sdk.runtime.store.fetch import Fetcher

STORE_FILE = "store.json"
PUBLISHER_KEY = "publisher.pub"


def find_published(store_url: str, bundle: Path) -> dict[str, Any]:
    """The published name and version of `bundle` at `store_url` (matched by the manifest's sha256), and the
    publisher's public key if that version's signature verifies over this very manifest."""
    manifest = read_manifest_bytes(bundle)
    sha = hashlib.sha256(manifest).hexdigest()
    try:
        fetcher = Fetcher(store_url, retries=2)
        index = layout.check_index(layout.parse_json(fetcher.get(layout.INDEX_NAME, layout.MAX_INDEX_BYTES, "the index"),
                                                     "the index", layout.MAX_INDEX_BYTES), fetcher.url(layout.INDEX_NAME))
    except StoreError as e:
        raise DeviceBuildError(f"--store-url: {e}") from None
    found = [(name, version, info) for name, entry in index["models"].items()
             for version, info in entry["versions"].items() if info["manifest_sha256"] == sha]
    if not found:
        raise DeviceBuildError(f"{bundle} is not published at {store_url}; publish it first (edge-sdk publish {bundle} "
                               "--output DIR) and serve DIR at that URL")
    name, version, info = found[-1]
    key = None
    if info.get("signature"):
        sig = info["signature"]
        data = fetcher.get(layout.blob_path(sig["sha256"]), sig["bytes"], "the signature")
        try:
            doc = json.loads(data)
            pub = base64.b64decode(doc["public_key"], validate=True)
            ok = (hashlib.sha256(data).hexdigest() == sig["sha256"]
                  and verify(pub, DOMAIN + manifest, base64.b64decode(doc["signature"], validate=True)))
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise DeviceBuildError(f"the signature published for {name} {version} at {store_url} does not verify over "
                                   f"{bundle}'s manifest; publish it again")
        key = public_key_text(pub)
    return {"url": fetcher.base, "name": name, "version": version, "manifest_sha256": sha, "publisher_key": key}


def write_store_files(build_dir: Path, published: dict[str, Any]) -> None:
    doc = {k: published[k] for k in ("url", "name", "version", "manifest_sha256")}
    doc["signed"] = published["publisher_key"] is not None
    (build_dir / STORE_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if published["publisher_key"]:
        (build_dir / PUBLISHER_KEY).write_text(published["publisher_key"], encoding="utf-8")


def first_run_sh(published: dict[str, Any]) -> str:
    """The shell step run.sh starts with: pull the bundle into ./store once, then use the store's active version."""
    name, version = layout.check_id(published["name"], "name"), layout.check_id(published["version"], "version")
    key = ' --trusted-key "$here/' + PUBLISHER_KEY + '"' if published["publisher_key"] else ""
    return f'''# The bundle is not in this build: the first run pulls it from the store (resumable, verified,
# smoke-tested) into $EDGE_SDK_STORE or ./store; later runs use the store's active version.
store=${{EDGE_SDK_STORE:-$here/store}}
if ! bundle=$("$venv/bin/python" -P -m edge_sdk models --store "$store" --path {name} 2>/dev/null); then
    "$venv/bin/python" -P -m edge_sdk pull {shlex.quote(published["url"])} {name} --version {version} \\
        --store "$store" --device "$here/device_profile.json"{key} >&2 || exit 1
    bundle=$("$venv/bin/python" -P -m edge_sdk models --store "$store" --path {name})
fi
'''


def store_run_sh(run_sh: str, published: dict[str, Any]) -> str:
    """run.sh made to pull its bundle: the first-run step after the installed-venv check, and every use of the
    shipped bundle folder replaced by the store's active version."""
    check = run_sh.find('if [ ! -x "$venv/bin/python" ]')
    end = run_sh.find("\nfi\n", check)
    if check < 0 or end < 0 or '"$here/bundle"' not in run_sh:
        raise DeviceBuildError("run.sh has an unexpected shape; the --store-url step cannot be added (a bug)")
    end += len("\nfi\n")
    body = run_sh[end:].replace('"$here/bundle"', '"$bundle"')
    return run_sh[:end] + first_run_sh(published) + body
