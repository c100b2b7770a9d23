"""Bundles over the air: a device-side model store that downloads, verifies, updates and rolls back.

    from edge_sdk.store import Store
    store = Store()                                              # ~/.cache/edge-sdk/store
    store.pull("https://example.com/models/", "smollm2")         # only the files this device lacks
    model = edge_sdk.load(store.path("smollm2"))                 # the active version

layout.py    the published folder (index, per-version listings, blobs by sha256) and its checks
fetch.py     urllib: bounded reads, resumable downloads (HTTP Range), careful redirects
pull.py      one pull: plan, disk check, downloads, assembly, verification
activate.py  the active pointer (one rename) and the smoke prompt a version passes first
lock.py      one writer at a time (flock)
store.py     the Store: pull, list, path, use, rollback, remove, gc
reload.py    a served model swapped for the store's active version, in-flight requests undisturbed

The host side (`edge-sdk publish`) is deploy/publish.py. Standard library only: no new dependency here.
"""
from __future__ import annotations

from .activate import smoke_prompt
from .layout import INDEX_NAME
from .pull import PullProgress, PullResult
from .store import Installed, Store, default_store_dir

__all__ = ["Store", "Installed", "PullProgress", "PullResult", "default_store_dir", "smoke_prompt", "INDEX_NAME"]
