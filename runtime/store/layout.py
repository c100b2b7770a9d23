"""The published layout: what `edge-sdk publish` writes and what a Store reads, as plain files any static
web server or object store can serve.

    index.json                    every model and version: latest, manifest hash, size, signature
    models/NAME/VERSION.json      one version's listing: every file with its sha256 and size
    blobs/sha256/ab/abcdef...     file contents under their sha256 (the manifest and signature too)

Files are content-addressed, so two versions that share their weights share one blob, and a device that
already holds a file (under any version) does not download it again: an adapter or a new tokenizer costs
its own bytes, not the weights'.

Everything read from a server is untrusted. Names and versions are single path components from a small
alphabet; file names are checked as a bundle's are (files.check_name); URLs are built here from checked
parts only, never taken from the server; JSON is parsed with a size limit, without NaN, and depth errors
are caught.
"""
from __future__ import annotations

import json
import re
from typing import Any

from edge_sdk.errors import BundleError, StoreError

from ..bundle.files import check_file_table
from ..bundle.manifest import MAX_MANIFEST_BYTES
from ..bundle.signature import SIGNATURE_NAME

INDEX_FORMAT = "edge-store-index"
LISTING_FORMAT = "edge-store-listing"
SCHEMA_VERSION = 1
INDEX_NAME = "index.json"

MAX_INDEX_BYTES = 4 << 20  # thousands of versions
MAX_LISTING_BYTES = 8 << 20
MAX_SIGNATURE_BYTES = 4096  # signature.py reads at most this much
MAX_FILES = 10_000  # files in one version
MAX_FILE_BYTES = 1 << 40  # one file; the disk check bounds the real total

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_B64_KEY = re.compile(r"^[A-Za-z0-9+/]{43}=$")


def check_id(value: object, what: str) -> str:
    """A model name or version: one path component of letters, digits, '.', '_', '-' (not starting with '.')."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise StoreError(f"{what} {str(value)[:80]!r} is not a valid name: use 1-128 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return value


def check_sha(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise StoreError(f"{what} must be a sha256 (64 lowercase hex digits), got {str(value)[:80]!r}")
    return value


def check_size(value: object, what: str, limit: int = MAX_FILE_BYTES) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise StoreError(f"{what} must be a size in bytes from 0 to {limit}, got {str(value)[:40]}")
    return value


def blob_path(sha256: str) -> str:
    """Where a blob lives, relative to the published folder (and to the URL)."""
    check_sha(sha256, "a blob name")
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


def listing_path(name: str, version: str) -> str:
    return f"models/{check_id(name, 'model name')}/{check_id(version, 'version')}.json"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes, what: str, limit: int) -> Any:
    """JSON from untrusted bytes: at most `limit` bytes, UTF-8, no NaN/Infinity, bounded nesting."""
    if len(data) > limit:
        raise StoreError(f"{what} has more than {limit} bytes; refusing to read it (a malformed or hostile server?)")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise StoreError(f"{what} is not valid JSON ({str(e)[:120]}); is the URL a folder made by `edge-sdk publish`?") \
            from None


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise StoreError(f"{what} must be a JSON object; the server's folder is malformed")
    return value


def _header(doc: Any, fmt: str, what: str) -> dict:
    doc = _object(doc, what)
    if doc.get("format") != fmt:
        raise StoreError(f"{what} is not an edge-sdk store file (format {str(doc.get('format'))[:40]!r}, expected "
                         f"{fmt!r}); is the URL a folder made by `edge-sdk publish`?")
    if doc.get("schema_version") != SCHEMA_VERSION or isinstance(doc.get("schema_version"), bool):
        raise StoreError(f"{what} has schema_version {str(doc.get('schema_version'))[:20]}; this edge-sdk reads "
                         f"{SCHEMA_VERSION}: upgrade edge-sdk")
    return doc


def check_signature_ref(sig: Any, what: str) -> dict | None:
    if sig is None:
        return None
    sig = _object(sig, what)
    check_sha(sig.get("sha256"), f"{what}.sha256")
    check_size(sig.get("bytes"), f"{what}.bytes", MAX_SIGNATURE_BYTES)
    if not isinstance(sig.get("public_key"), str) or not _B64_KEY.match(sig["public_key"]):
        raise StoreError(f"{what}.public_key must be a base64 Ed25519 key")
    return sig


def check_index(doc: Any, where: str) -> dict:
    """The index's shape: {"models": {NAME: {"latest": V, "versions": {V: {...}}}}}, names checked."""
    doc = _header(doc, INDEX_FORMAT, where)
    models = _object(doc.get("models"), f"{where}: 'models'")
    for name, entry in models.items():
        check_id(name, f"{where}: a model name")
        entry = _object(entry, f"{where}: models[{name!r}]")
        versions = _object(entry.get("versions"), f"{where}: models[{name!r}].versions")
        for version, info in versions.items():
            check_id(version, f"{where}: a version of {name}")
            info = _object(info, f"{where}: {name} {version}")
            check_sha(info.get("manifest_sha256"), f"{where}: {name} {version}: manifest_sha256")
            check_size(info.get("bytes"), f"{where}: {name} {version}: bytes", MAX_FILE_BYTES * 16)
            check_signature_ref(info.get("signature"), f"{where}: {name} {version}: signature")
        latest = entry.get("latest")
        if latest is not None and latest not in versions:
            raise StoreError(f"{where}: models[{name!r}].latest {str(latest)[:80]!r} is not one of its versions")
    return doc


def check_listing(doc: Any, name: str, version: str, where: str) -> dict:
    """One version's listing: its name and version as asked, the manifest's and signature's blobs, and a
    file table checked as a manifest's is (plain names inside the bundle, sha256, sizes)."""
    doc = _header(doc, LISTING_FORMAT, where)
    if doc.get("name") != name or doc.get("version") != version:
        raise StoreError(f"{where} describes {str(doc.get('name'))[:80]!r} {str(doc.get('version'))[:80]!r}, not "
                         f"{name} {version}; the server's folder is inconsistent")
    manifest = _object(doc.get("manifest"), f"{where}: manifest")
    check_sha(manifest.get("sha256"), f"{where}: manifest.sha256")
    check_size(manifest.get("bytes"), f"{where}: manifest.bytes", MAX_MANIFEST_BYTES)
    check_signature_ref(doc.get("signature"), f"{where}: signature")
    files = doc.get("files")
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        raise StoreError(f"{where}: 'files' must map at most {MAX_FILES} file names to their sha256 and size")
    try:
        check_file_table(files)
        if SIGNATURE_NAME in files:
            raise BundleError(f"'files' lists {SIGNATURE_NAME}, which is the signature's place")
    except BundleError as e:  # say where it came from
        raise StoreError(f"{where}: {e}") from None
    for rel, info in files.items():
        check_size(info["bytes"], f"{where}: files[{rel!r}].bytes")
    return doc
