"""The edge bundle manifest: the only contract between the exporter and the runtime.

`read_manifest` checks the schema version and the sha256 of every file the runtime will open, so a
truncated copy or a swapped graph is reported before onnxruntime sees it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edge_sdk.errors import BundleError

MANIFEST_NAME = "edge_manifest.json"
SCHEMA_VERSION = 1
BUNDLE_FORMAT = "edge-bundle"

# Top-level sections every manifest of this schema has.
REQUIRED_SECTIONS = ("architecture", "graph", "kv_cache", "tokenizer", "chat_template", "generation",
                     "quantization", "device", "files", "provenance", "validation")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(bundle_dir: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read and check `edge_manifest.json`; with `verify`, hash every listed file."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.exists():
        raise BundleError(f"bundle folder {bundle_dir} does not exist; export one with `edge-sdk export SOURCE --output {bundle_dir}`")
    if not path.is_file():
        raise BundleError(f"{bundle_dir} is not an edge bundle: it has no {MANIFEST_NAME} (export it with `edge-sdk export`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON ({e}); re-export the bundle") from e
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: 'format' is {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{path}: schema_version {version!r} is not supported by this edge-sdk (it reads {SCHEMA_VERSION}); "
            "re-export the bundle with this version, or upgrade edge-sdk"
        )
    missing = [s for s in REQUIRED_SECTIONS if s not in manifest]
    if missing:
        raise BundleError(f"{path}: missing sections {missing}; the bundle is incomplete - re-export it")
    if verify:
        verify_files(bundle_dir, manifest)
    return manifest


def verify_files(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    for name, info in manifest["files"].items():
        p = bundle_dir / name
        if not p.is_file():
            raise BundleError(f"{bundle_dir}: file {name} listed in the manifest is missing; copy the whole bundle folder")
        if p.stat().st_size != info.get("bytes", p.stat().st_size):
            raise BundleError(f"{bundle_dir}: {name} has {p.stat().st_size} bytes, the manifest says {info['bytes']} (truncated copy?)")
        if sha256_file(p) != info["sha256"]:
            raise BundleError(f"{bundle_dir}: {name} does not match its sha256 in the manifest (corrupted or modified); re-export or re-copy the bundle")
