"""Reading an edge bundle safely: the manifest is the contract, and everything in a bundle is untrusted.

    from edge_sdk.runtime.bundle import read_manifest
    manifest = read_manifest("bundles/smollm2")      # schema, confinement, sha256 of every file

manifest.py   read + check the manifest (the order of the checks is there)
schema.py     every field the runtime reads: type and range
files.py      file names confined to the bundle folder, sizes and hashes
onnx_refs.py  the files a graph makes onnxruntime open (external data, context binaries)
signature.py  Ed25519-signed bundles, verified in pure Python
"""
from __future__ import annotations

from .files import MANIFEST_NAME, resolve, sha256_file
from .manifest import BUNDLE_FORMAT, REQUIRED_SECTIONS, SCHEMA_VERSION, read_manifest
from .signature import SIGNATURE_NAME

__all__ = ["read_manifest", "resolve", "sha256_file", "MANIFEST_NAME", "BUNDLE_FORMAT", "SCHEMA_VERSION",
           "REQUIRED_SECTIONS", "SIGNATURE_NAME"]
