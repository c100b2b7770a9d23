"""One writer at a time: an exclusive lock on `STORE/.lock` (fcntl.flock) around every change to a store.

Readers (`Store.path`, `Store.list`) take no lock: a version folder appears by one rename and the active
pointer changes by one rename, so a reader sees the old state or the new one. The lock is released by the
kernel when its process dies, so a killed pull never leaves a store locked.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from edge_sdk.errors import StoreError


@contextlib.contextmanager
def locked(root: Path, timeout: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the store's lock; wait up to `timeout` seconds for another process to finish (calling `on_wait` once)."""
    import fcntl  # POSIX (Linux, Android, macOS, iOS): the platforms edge-sdk runs on

    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                     0o644)
    except OSError as e:
        raise StoreError(f"cannot use {root} as a store: {e.strerror} ({e.filename}); choose a folder you can write "
                         "(--store DIR, or EDGE_SDK_STORE)") from None
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                if time.monotonic() >= deadline:
                    raise StoreError(f"{root} is busy: another process has been changing it (a pull?) for more than "
                                     f"{timeout:.0f} s; try again when it has finished") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
