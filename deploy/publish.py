"""`edge-sdk publish BUNDLE --output DIR`: a bundle as a static folder devices pull from (runtime/store).

    publish("bundles/smollm2", "site/models")                       # version = the manifest's hash
    publish("bundles/smollm2-v2", "site/models", name="smollm2", version="2", sign_key="publisher.key")

DIR holds every version published into it (a fleet may still pull an old one); files are stored once under
their sha256 (runtime/store/layout.py), so a second version that shares the weights adds only what changed.
Any static web server or object store serves DIR as it is.

Each write goes to a temporary file first and is renamed into place, blobs before the listing and the
listing before the index: a device reading the index while a publish runs sees the old index or the new
one, and everything the index names is already there. A version, once published, is never changed:
publishing other contents under the same name and version is refused.
"""
from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any

from edge_sdk.errors import OutputExistsError, StoreError
from edge_sdk.runtime.bundle import read_manifest, sha256_file
from edge_sdk.runtime.bundle.manifest import read_manifest_bytes
from edge_sdk.runtime.bundle.signature import (
    DOMAIN, SIGNATURE_FORMAT, SIGNATURE_NAME, load_private_key, public_key, sign, verify)
from edge_sdk.runtime.store import layout
from edge_sdk.runtime.store.lock import locked


def publish(bundle: str | os.PathLike, output: str | os.PathLike, *, name: str | None = None,
            version: str | None = None, sign_key: str | os.PathLike | None = None, latest: bool = True,
            progress=None) -> dict[str, Any]:
    """Publish `bundle` into the folder `output` (created if needed); returns what was written.

    name: the model's name in the store (default: the manifest's name).
    version: the version's name (default: the first 12 hex digits of the manifest's sha256).
    sign_key: an Ed25519 private key file (edge-sdk keygen): the version is signed with it (the bundle
        folder is not modified). Without it, a bundle signed earlier (edge-sdk sign) keeps its signature.
    latest: make this version the one devices pull when they ask for no version.
    """
    bundle, output = Path(bundle), Path(output)
    say = progress or (lambda message: None)
    say(f"checking {bundle} (sha256 of every file)")
    manifest = read_manifest(bundle, verify=True)
    manifest_bytes = read_manifest_bytes(bundle)
    try:
        name = layout.check_id(name if name is not None else manifest.get("name"), "model name")
        version = layout.check_id(version or sha256_bytes(manifest_bytes)[:12], "version")
    except StoreError as e:
        raise StoreError(f"{e} (choose one with --name / --version)") from None
    signature = _signature(bundle, manifest_bytes, sign_key)
    manifest_sha = sha256_bytes(manifest_bytes)

    _check_output(output)
    output.mkdir(parents=True, exist_ok=True)
    with locked(output, timeout=600.0):
        index = _read_index(output)
        entry = index["models"].setdefault(name, {"latest": None, "versions": {}})
        old = entry["versions"].get(version)
        if old is not None:
            if old["manifest_sha256"] != manifest_sha:
                raise OutputExistsError(
                    f"{name} {version} is already published in {output} with other contents (manifest "
                    f"{old['manifest_sha256'][:12]}); a published version never changes, since devices may hold it. "
                    "Publish under a new --version")
            say(f"{name} {version} is already published in {output}: nothing to do")
            return {"name": name, "version": version, "output": str(output), "new_files": 0, "new_bytes": 0,
                    "reused_files": len(manifest["files"]), "reused_bytes": _total(manifest), "unchanged": True,
                    "manifest_sha256": manifest_sha, "signed": signature is not None}

        written, new_bytes, reused, reused_bytes = 0, 0, 0, 0
        blobs = [(bundle / rel, info["sha256"], info["bytes"]) for rel, info in manifest["files"].items()]
        for src, sha, size in blobs:
            if _put_blob(output, sha, size, src=src):
                written, new_bytes = written + 1, new_bytes + size
            else:
                reused, reused_bytes = reused + 1, reused_bytes + size
        _put_blob(output, manifest_sha, len(manifest_bytes), data=manifest_bytes)
        sig_ref = None
        if signature is not None:
            sig_sha = sha256_bytes(signature["bytes"])
            _put_blob(output, sig_sha, len(signature["bytes"]), data=signature["bytes"])
            sig_ref = {"sha256": sig_sha, "bytes": len(signature["bytes"]), "public_key": signature["public_key"]}
        say(f"{written} new files ({new_bytes / 1e6:.1f} MB), {reused} already published ({reused_bytes / 1e6:.1f} MB)")

        listing = {"format": layout.LISTING_FORMAT, "schema_version": layout.SCHEMA_VERSION, "name": name,
                   "version": version, "manifest": {"sha256": manifest_sha, "bytes": len(manifest_bytes)},
                   "signature": sig_ref, "files": manifest["files"], "bytes": _total(manifest)}
        _write_atomic(output / layout.listing_path(name, version), _json(listing))
        entry["versions"][version] = {
            "manifest_sha256": manifest_sha, "bytes": _total(manifest), "files": len(manifest["files"]),
            "signature": sig_ref, "bundle": manifest.get("name"),
            "recipe": (manifest.get("quantization") or {}).get("recipe"),
            "published": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if latest or entry["latest"] is None:
            entry["latest"] = version
        layout.check_index(index, "the new index")  # what devices will read must pass their own checks
        _write_atomic(output / layout.INDEX_NAME, _json(index))
    say(f"published {name} {version} in {output}")
    return {"name": name, "version": version, "output": str(output), "new_files": written, "new_bytes": new_bytes,
            "reused_files": reused, "reused_bytes": reused_bytes, "unchanged": False, "manifest_sha256": manifest_sha,
            "signed": signature is not None, "latest": entry["latest"] == version}


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _total(manifest: dict) -> int:
    return sum(info["bytes"] for info in manifest["files"].values())


def _signature(bundle: Path, manifest_bytes: bytes, sign_key) -> dict | None:
    """The signature file's bytes and public key: made with `sign_key`, or the bundle's own if it is valid."""
    if sign_key is not None:
        try:
            seed = load_private_key(sign_key)
        except ValueError as e:
            raise StoreError(f"--sign {sign_key}: {e}") from None
        pub = public_key(seed)
        doc = {"format": SIGNATURE_FORMAT, "algorithm": "ed25519", "public_key": _b64(pub),
               "signature": _b64(sign(seed, DOMAIN + manifest_bytes))}
        return {"bytes": (json.dumps(doc, indent=2) + "\n").encode(), "public_key": _b64(pub)}
    path = bundle / SIGNATURE_NAME
    if not path.is_file():
        return None
    data = path.read_bytes()[:layout.MAX_SIGNATURE_BYTES + 1]
    try:
        doc = json.loads(data)
        pub, sig = base64.b64decode(doc["public_key"], validate=True), base64.b64decode(doc["signature"], validate=True)
        ok = len(data) <= layout.MAX_SIGNATURE_BYTES and verify(pub, DOMAIN + manifest_bytes, sig)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise StoreError(f"{path} does not sign this manifest (the bundle changed after `edge-sdk sign`?); sign it "
                         "again, or publish with --sign KEY")
    return {"bytes": data, "public_key": doc["public_key"]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_output(output: Path) -> None:
    """DIR is new, empty, or a folder published into before: never scatter blobs into another folder."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise OutputExistsError(f"--output {output} is not a folder")
    if output.is_dir() and not (output / layout.INDEX_NAME).is_file():
        if any(p.name != ".lock" for p in output.iterdir()):
            raise OutputExistsError(f"--output {output} exists and is not a folder made by `edge-sdk publish` (it has "
                                    f"no {layout.INDEX_NAME}); choose an empty or new folder")


def _read_index(output: Path) -> dict[str, Any]:
    path = output / layout.INDEX_NAME
    if not path.is_file():
        return {"format": layout.INDEX_FORMAT, "schema_version": layout.SCHEMA_VERSION, "models": {}}
    with open(path, "rb") as f:
        data = f.read(layout.MAX_INDEX_BYTES + 1)
    return layout.check_index(layout.parse_json(data, str(path), layout.MAX_INDEX_BYTES), str(path))


def _put_blob(output: Path, sha: str, size: int, *, src: Path | None = None, data: bytes | None = None) -> bool:
    """Store one blob unless an intact copy is there; True if it was written."""
    dest = output / layout.blob_path(sha)
    if dest.is_file() and not dest.is_symlink() and dest.stat().st_size == size and sha256_file(dest) == sha:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{sha}.tmp-{os.getpid()}"
    try:
        if data is not None:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        else:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if sha256_file(tmp) != sha:  # the bundle changed while it was published
            raise StoreError(f"{src or 'a file'} changed while it was being published; publish again")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _json(doc: dict) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n"

