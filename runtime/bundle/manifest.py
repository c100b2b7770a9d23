"""The edge bundle manifest: the only contract between the exporter and the runtime.

`read_manifest` checks, before onnxruntime or the tokenizer see anything:
1. the manifest itself: a regular file of sane size, JSON, the right format and schema version;
2. every field the runtime reads (schema.py): types, ranges, names;
3. every file the runtime will open, and every file its graphs refer to, is a plain name inside
   the bundle and listed in `files` (files.py, onnx_refs.py);
4. with `trusted_keys`, the manifest's signature (signature.py);
5. with `verify`, the size and sha256 of every listed file.
"""
from __future__ import annotations

import json
import os
import posixpath
import stat
from pathlib import Path
from typing import Any, Iterable

from edge_sdk.errors import BundleError

from . import schema
from .files import MANIFEST_NAME, _lstat_inside, check_file_table, check_name, verify_files
from .onnx_refs import referenced_files

SCHEMA_VERSION = 1
BUNDLE_FORMAT = "edge-bundle"
MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists files and figures: megabytes at most

# Top-level sections every manifest of this schema has, by its "kind" (absent = "decoder": bundles
# written before embedders existed stay readable).
REQUIRED_SECTIONS = ("architecture", "graph", "kv_cache", "tokenizer", "chat_template", "generation",
                     "quantization", "device", "files", "provenance", "validation")
SECTIONS_BY_KIND = {
    "decoder": REQUIRED_SECTIONS,
    "embedder": ("architecture", "graph", "tokenizer", "embedding", "quantization", "device", "files", "provenance",
                 "validation"),
}


def manifest_kind(manifest: dict[str, Any]) -> str:
    """"decoder" (generates text) or "embedder" (sentence vectors); checked by parse_manifest."""
    return manifest.get("kind", "decoder")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def read_manifest_bytes(bundle_dir: Path) -> bytes:
    """The manifest file's bytes: a regular file (no link), at most MAX_MANIFEST_BYTES."""
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.exists():
        raise BundleError(f"bundle folder {bundle_dir} does not exist; export one with `edge-sdk export SOURCE --output {bundle_dir}`")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir} is not an edge bundle: it has no {MANIFEST_NAME} (export it with `edge-sdk export`)") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path} is not a regular file (a symbolic link or a device?); copy the bundle with its files")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} has {st.st_size} bytes; a manifest is at most {MAX_MANIFEST_BYTES >> 20} MB")
    with open(path, "rb") as f:
        return f.read(MAX_MANIFEST_BYTES + 1)


def parse_manifest(data: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BundleError(f"{path} is not valid JSON ({str(e)[:200]}); re-export the bundle") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} must hold a JSON object, not {type(manifest).__name__}; re-export the bundle")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: 'format' is {str(manifest.get('format'))[:80]!r}, expected {BUNDLE_FORMAT!r}")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise BundleError(
            f"{path}: schema_version {repr(version)[:20]} is not supported by this edge-sdk (it reads {SCHEMA_VERSION}); "
            "re-export the bundle with this version, or upgrade edge-sdk"
        )
    kind = manifest.get("kind", "decoder")
    if not isinstance(kind, str) or kind not in SECTIONS_BY_KIND:
        raise BundleError(f"{path}: 'kind' is {str(kind)[:40]!r}; this edge-sdk reads {', '.join(SECTIONS_BY_KIND)} "
                          "bundles - upgrade edge-sdk or re-export the bundle")
    missing = [s for s in SECTIONS_BY_KIND[kind] if s not in manifest]
    if missing:
        raise BundleError(f"{path}: missing sections {missing}; the bundle is incomplete - re-export it")
    return manifest


def graph_files(manifest: dict[str, Any]) -> list[str]:
    graph = manifest["graph"]
    names = list(graph["files"].values())
    if isinstance(graph.get("context_binaries"), dict):
        names += list(graph["context_binaries"]["files"].values())
    return list(dict.fromkeys(names))


def check_references(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the runtime opens, and every file a graph refers to, is listed in the manifest."""
    files = manifest["files"]
    for field, name in schema.opened_files(manifest):
        if name not in files:
            raise BundleError(f"{MANIFEST_NAME}: {field} {name!r} is not listed in 'files', so it cannot be verified; "
                              "re-export the bundle")
    for name in graph_files(manifest):
        st = _lstat_inside(root, name)
        if st.st_size != files[name]["bytes"]:
            raise BundleError(f"{root}: {name} has {st.st_size} bytes, the manifest says {files[name]['bytes']} "
                              "(truncated or modified copy?); re-copy or re-export the bundle")
        with open(root / name, "rb") as f:
            refs = referenced_files(f.read())
        folder = posixpath.dirname(name)
        for ref in refs:
            check_name(ref, f"a file referenced by graph {name}")
            target = posixpath.normpath(posixpath.join(folder, ref))
            if target.startswith("../") or target not in files:
                raise BundleError(f"{root}: graph {name} refers to {ref!r}, which is not a listed file of the bundle; "
                                  "the bundle is malformed or hostile - re-export it")


def read_manifest(bundle_dir: str | Path, verify: bool = True,
                  trusted_keys: Iterable[str | bytes | os.PathLike] | None = None) -> dict[str, Any]:
    """Read and check `edge_manifest.json` (see the module docstring); with `verify`, hash every listed file.

    trusted_keys: Ed25519 public keys (or key files); when given, the bundle must carry a valid
    signature by one of them (`edge-sdk sign`), else BundleError.
    """
    bundle_dir = Path(bundle_dir)
    data = read_manifest_bytes(bundle_dir)
    manifest = parse_manifest(data, bundle_dir / MANIFEST_NAME)
    schema.validate(manifest)
    check_file_table(manifest["files"])
    root = Path(os.path.realpath(bundle_dir))  # the folder the user named may be a link; nothing below it may
    check_references(root, manifest)
    if trusted_keys is not None:
        from .signature import verify_bundle_signature

        verify_bundle_signature(root, data, trusted_keys)
    if verify:
        verify_files(root, manifest)
    return manifest
