"""Fixtures for the document index tests: a fake embedder (no model needed) and a few documents."""
from __future__ import annotations

from pathlib import Path

import pytest

from .fake_embedder import FakeEmbedder

DOCS = {
    "notes/rent.md": "# Rent\n\nThe rent is due on the first day of each month. Pay it by bank transfer.\n",
    "notes/cats.txt": "Cats sleep for most of the day. They purr when they are content.\n",
    "notes/deep/router.rst": "Router reset\n============\n\nHold the reset button for ten seconds to reset the "
                             "router.\n",
    "notes/.hidden.md": "secret hidden words\n",
    "notes/.git/config.md": "hidden folder words\n",
    "notes/picture.png": "\x89PNG not a document\n",
}


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def docs(tmp_path) -> Path:
    """A folder of documents (plus hidden and unsupported files that a walk must skip)."""
    root = tmp_path / "docs"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root
