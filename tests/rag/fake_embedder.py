"""A deterministic stand-in for an embedder bundle: hashed bag of words, whitespace tokens.

Texts sharing words get similar vectors, so retrieval tests mean something without the real model.
`delay` (seconds per embed call) makes indexing slow enough to be interrupted in tests.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np

WORD = re.compile(r"\w+")


class FakeEmbedder:
    def __init__(self, dim: int = 64, max_tokens: int = 254, name: str = "fake-bow", seed: str = "0",
                 delay: float = 0.0, bundle_dir: str | Path = "/nonexistent/fake-embedder"):
        self.dim, self.max_tokens, self.delay = dim, max_tokens, delay
        self.bundle_dir = Path(bundle_dir)
        self.identity = {"name": name, "fingerprint": hashlib.sha256(f"{name}/{seed}/{dim}".encode()).hexdigest()}
        self.seed = seed
        self.calls = 0  # embed() calls
        self.texts = 0  # texts embedded

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        if self.delay:
            time.sleep(self.delay)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for w in WORD.findall(text.lower()):
                h = hashlib.blake2b(f"{self.seed}:{w}".encode(), digest_size=8).digest()
                out[i, int.from_bytes(h[:4], "little") % self.dim] += 1.0 if h[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out[:, 0] += (norms[:, 0] == 0)  # an empty text still gets a unit vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)
