"""Which version of a model is active: a small JSON pointer replaced in one rename, and the smoke prompt a
version must answer before it becomes active.

    models/NAME/active.json    {"version": "2", "previous": "1", "activated": "2026-12-07T10:00:00+00:00"}

The pointer is written to a temporary file, flushed to disk, then `os.replace`d over the old one (atomic
on POSIX filesystems) and the folder is flushed too: a process killed at any point, or a power cut, leaves
the old pointer or the new one, never a mix. The version it names was complete and verified before it was
renamed into place, and it is never deleted while it is active or previous.
"""
from __future__ import annotations

import datetime
import gc
import json
import os
from pathlib import Path
from typing import Any

from edge_sdk.errors import StoreError

POINTER = "active.json"
MAX_POINTER_BYTES = 4096


def read_pointer(model_dir: Path) -> dict[str, Any] | None:
    """The model's active pointer, or None when it has none (never activated, or removed)."""
    from .layout import check_id

    path = model_dir / POINTER
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror}") from None
    try:
        doc = json.loads(data.decode("utf-8")) if len(data) <= MAX_POINTER_BYTES else None
        check_id(doc["version"], "the active version")
        if doc.get("previous") is not None:
            check_id(doc["previous"], "the previous version")
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, StoreError):
        raise StoreError(f"{path} is damaged (edited by hand?); choose the version again with "
                         f"`edge-sdk models --use {model_dir.name} VERSION` (or Store.use)") from None
    return doc


def write_pointer(model_dir: Path, version: str, previous: str | None) -> dict[str, Any]:
    """Make `version` active in one rename; returns the pointer written."""
    doc = {"version": version, "previous": previous,
           "activated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    tmp = model_dir / f".{POINTER}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")
            f.flush()
            os.fsync(f.fileno())
        swap(tmp, model_dir / POINTER)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot switch {model_dir.name} to version {version}: {e.strerror}; the previous version "
                         "is still active") from None
    sync_dir(model_dir)
    return doc


def swap(tmp: Path, pointer: Path) -> None:
    """The activation point: after this rename the new version is the active one."""
    os.replace(tmp, pointer)


def sync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def smoke_prompt(path: Path, *, trusted_keys=None, **load_options) -> str:
    """The check a version passes before it becomes active: it loads (every file hashed again, the signature
    checked when keys are given, the graph opened) and answers a short prompt, or an embedder embeds a text.
    Returns what it answered; raises what went wrong."""
    import math

    import edge_sdk

    model = edge_sdk.load(path, trusted_keys=trusted_keys, **load_options)
    try:
        if hasattr(model, "embed"):
            vector = [float(x) for x in model.embed(["Hello"])[0]]
            if not vector or not all(math.isfinite(x) for x in vector):
                raise StoreError("the embedder returned a vector that is empty or not finite")
            return f"a {len(vector)}-dimensional vector"
        return model.generate("Hello", max_new_tokens=4, temperature=0.0)
    finally:
        del model
        gc.collect()  # the smoke model's sessions go before the app loads the version for real
