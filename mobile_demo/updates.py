"""Model updates for the chat app: which store version the app runs, and a pull on a worker thread (no Kivy here).

A bundle the app runs from a store (edge_sdk.store: .../models/NAME/versions/VERSION) knows its name, its
version and where it was pulled from, so the settings can offer "check for an update" with nothing to type.
The pull runs on a thread and reports through ``schedule`` (``Clock.schedule_once``); the app then opens
the new version beside the running one and switches only once it has loaded (ChatApp._switch_bundle).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class StoreVersion:
    """The store, model name and version behind a bundle folder, and the URL it was pulled from."""

    root: Path
    name: str
    version: str
    url: str


def store_version(bundle_path: str | Path) -> StoreVersion | None:
    """The store version a bundle folder is, or None for a bundle outside any store."""
    path = Path(bundle_path).resolve()
    if len(path.parts) < 5 or path.parent.name != "versions" or path.parents[2].name != "models":
        return None
    root, name, version = path.parents[3], path.parents[1].name, path.name
    if not (root / "models").is_dir():
        return None
    from edge_sdk.store import Store

    try:
        meta = Store(root)._pulled(name, version)
    except Exception:  # noqa: BLE001 - a name the store would refuse: not a store version
        return None
    return StoreVersion(root, name, version, str(meta.get("url") or ""))


def pull_in_background(store_dir: str | Path, url: str, name: str, *, schedule: Callable, on_progress: Callable,
                       on_done: Callable, on_error: Callable, store_factory=None) -> threading.Thread:
    """Pull `name` from `url` into the store on a thread: ``on_progress(PullProgress, dt)`` now and then, then
    ``on_done(PullResult, dt)`` or ``on_error(exc, dt)`` (a StoreError: the store and the app are unchanged)."""
    def run():
        from edge_sdk.store import Store

        last = [0.0]

        def progress(p):
            import time

            now = time.monotonic()
            if p.stage != "download" or now - last[0] > 0.2:  # a few updates a second are enough for a bar
                last[0] = now
                schedule(partial(on_progress, p))

        try:
            store = (store_factory or Store)(store_dir)
            result = store.pull(url, name, progress=progress)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the screen
            schedule(partial(on_error, exc))
        else:
            schedule(partial(on_done, result))

    thread = threading.Thread(target=run, name="edge-sdk-update", daemon=True)
    thread.start()
    return thread


def progress_text(p) -> str:
    """One line for the banner while an update is pulled."""
    what = f"{p.name} {p.version}" if p.version else p.name
    if p.stage == "download" and p.bytes_total:
        return (f"Downloading {what}: {p.bytes_done / 1e6:.1f} of {p.bytes_total / 1e6:.1f} MB "
                f"({p.files_done}/{p.files_total} files)…")
    return {"waiting": f"Waiting for another download of {what}…", "index": f"Checking for an update of {what}…",
            "verify": f"Checking {what}…", "smoke": f"Trying {what} out…", "activate": f"Switching to {what}…",
            }.get(p.stage, f"Updating {what}…")
