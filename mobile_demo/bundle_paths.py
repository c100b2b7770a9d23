"""Where the app looks for a model bundle, and an embedder bundle, when none is given (no Kivy, easy to test)."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"
EXPORT_COMMAND = f"edge-sdk export {DEFAULT_MODEL} --output bundles/{DEFAULT_MODEL}"
# The sentence embedder the documents panel uses to index and search the user's files: the export alias,
# and the folder the README and docs/rag.md export it to (tests/unit/test_docs_paths.py keeps them agreeing).
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
EMBEDDER_DIR = "minilm"
EMBEDDER_EXPORT_COMMAND = f"edge-sdk export {DEFAULT_EMBEDDER} --output bundles/{EMBEDDER_DIR}"
MANIFEST = "edge_manifest.json"


def candidate_dirs(cwd: str | os.PathLike | None = None, model: str = DEFAULT_MODEL) -> list[Path]:
    """Default locations of `model`'s bundle, in the order they are tried.

    1. ``bundles/<model>`` under the working directory: where the README's export command writes.
    2. ``~/.cache/edge-sdk/bundles/<model>``: a per-user cache shared by projects.
    3. On Android, ``bundles/<model>`` in the app's folder: the APK's files (the bundle is packed
       as an asset) are unpacked there, and python-for-android names it in ``ANDROID_ARGUMENT``.
    """
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    dirs = [cwd / "bundles" / model,
            Path.home() / ".cache" / "edge-sdk" / "bundles" / model]
    android_app = os.environ.get("ANDROID_ARGUMENT")
    if android_app:
        dirs.append(Path(android_app) / "bundles" / model)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_default_bundle(cwd: str | os.PathLike | None = None, model: str = DEFAULT_MODEL) -> Path | None:
    """The first default location that holds a bundle manifest, or None."""
    for d in candidate_dirs(cwd, model):
        if (d / MANIFEST).is_file():
            return d
    return None


def find_default_embedder(cwd: str | os.PathLike | None = None) -> Path | None:
    """The embedder bundle in the same places (``bundles/minilm`` ...), or None."""
    return find_default_bundle(cwd, EMBEDDER_DIR)
