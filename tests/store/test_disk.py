"""A really full disk: the store on a 2 MB tmpfs (needs root to mount; skipped otherwise). The kernel's ENOSPC,
not a simulated one, stops the download; the store is left as it was and the space is given back."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from edge_sdk.deploy.publish import publish
from edge_sdk.errors import StoreError

from .conftest import make_store, store_state, variant


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk(site, bundles, small_disk, tmp_path, monkeypatch):
    folder, server = site
    publish(bundles["v1"], folder, name="tiny", version="1")
    big = variant(bundles["v1"], tmp_path / "big", extra={"extra.bin": os.urandom(1_500_000)})
    publish(big, folder, name="tiny", version="2")
    import edge_sdk.runtime.store.pull as pull_module

    monkeypatch.setattr(pull_module, "HEADROOM", 0)  # 16 MB of headroom would not fit this 2 MB disk
    store = make_store(small_disk / "store")
    store.pull(server.models_url, "tiny", version="1")  # 0.6 MB: fits
    before, free = store_state(store.root), shutil.disk_usage(small_disk).free
    # The disk check refuses what cannot fit ...
    with pytest.raises(StoreError, match="not enough disk space for tiny 2"):
        store.pull(server.models_url, "tiny", version="2")
    # ... and when it is fooled (another app filled the disk meanwhile), the write fails and everything goes.
    real = shutil.disk_usage
    monkeypatch.setattr(pull_module.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 40))
    with pytest.raises(StoreError, match=r"the disk filled up while writing .*Nothing was changed"):
        store.pull(server.models_url, "tiny", version="2")
    assert store_state(store.root) == before and store.active_version("tiny") == "1"
    assert list((store.root / ".incoming").iterdir()) == []
    assert real(small_disk).free == free  # every byte of the failed pull given back
    import edge_sdk

    edge_sdk.load(store.path("tiny"), threads=1).generate("Hi", max_new_tokens=3)  # the old version still runs
