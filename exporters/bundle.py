"""Writing an edge bundle: graphs, tokenizer, template, and the manifest with hashes and validation.

Everything goes to a temporary sibling folder (`staging`), renamed into place only when complete: a
failed or interrupted export leaves the output path as it was.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import onnx

from edge_sdk.runtime.bundle import BUNDLE_FORMAT, MANIFEST_NAME, SCHEMA_VERSION, SIGNATURE_NAME, sha256_file

from . import staging as _staging


def check_output(output: Path, force: bool) -> None:
    """Fail early when the bundle cannot be written; --force replaces only a previous bundle."""
    _staging.check_output(Path(os.path.abspath(output)), force, marker=MANIFEST_NAME, fmt=BUNDLE_FORMAT, kind="bundle")


@contextmanager
def staging(output: Path, force: bool) -> Iterator[Path]:
    """A temporary folder next to `output` that replaces it when the export succeeds."""
    with _staging.staging(output, force, marker=MANIFEST_NAME, fmt=BUNDLE_FORMAT, kind="bundle") as tmp:
        yield tmp


def weights_path(folder: Path, name: str) -> Path:
    """The external-data file of graph `name`: where save_onnx puts its weights, and where an emitter that
    streams its weights (graph/builder.py) writes them first."""
    return Path(folder) / f"{name}.data"


def save_onnx(model: onnx.ModelProto, folder: Path, name: str) -> list[str]:
    """Save a graph with its weights in one external-data file `<name>.data`; returns the file names.
    Weights already written to that file (a streamed graph) stay where they are; the rest are appended."""
    data_name = weights_path(folder, name).name
    onnx.save_model(model, str(folder / name), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_name, size_threshold=1024, convert_attribute=False)
    return [name] + ([data_name] if (folder / data_name).exists() else [])


def save_onnx_shared(paths: list[Path], data_name: str = "weights.data", align: int = 4096,
                     threshold: int = 1024) -> dict[str, int]:
    """Rewrite the graphs at `paths` (one folder) to keep their weights in one shared file.

    Each distinct initializer of `threshold` bytes or more is stored once in `data_name`, and every
    graph that has it points at the same bytes: the NPU flavour's prefill and decode graphs carry
    identical weights, which would otherwise be on disk (and in the phone's storage) twice. Offsets
    are `align`-ed so onnxruntime can map the file. The old per-graph `.data` files are removed.
    Returns {"unique_bytes", "referenced_bytes"}.
    """
    import hashlib

    from onnx.external_data_helper import set_external_data

    folder = Path(paths[0]).parent
    models = [onnx.load(str(p)) for p in paths]  # with their external data
    placed: dict[bytes, tuple[int, int]] = {}
    referenced = 0
    tmp = folder / (data_name + ".partial")
    with open(tmp, "wb") as f:
        for model in models:
            for t in model.graph.initializer:
                if t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < threshold:
                    continue
                blob = t.raw_data
                referenced += len(blob)
                key = hashlib.sha256(blob).digest() + len(blob).to_bytes(8, "little")
                if key not in placed:
                    offset = -f.tell() % align + f.tell()
                    f.seek(offset)
                    f.write(blob)
                    placed[key] = (offset, len(blob))
                offset, length = placed[key]
                set_external_data(t, location=data_name, offset=offset, length=length)
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
    for path, model in zip(paths, models):
        old_data = Path(str(path) + ".data")
        onnx.save_model(model, str(path))
        if old_data.exists():
            old_data.unlink()
    os.replace(tmp, folder / data_name)
    return {"unique_bytes": sum(n for _, n in placed.values()), "referenced_bytes": referenced}


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in the bundle except the manifest and its signature."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST_NAME, SIGNATURE_NAME):
            out[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = {"format": BUNDLE_FORMAT, "schema_version": SCHEMA_VERSION, **manifest}
    manifest["files"] = file_table(folder)
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)
    return manifest
