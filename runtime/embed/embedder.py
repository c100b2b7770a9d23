"""An embedder bundle loaded for use: texts in, sentence vectors out.

    emb = edge_sdk.load("bundles/minilm")
    vectors = emb.embed(["How do I reset the router?", "Hold the button for 10 s."])  # [2, 384]
    float(vectors[0] @ vectors[1])   # cosine similarity (the vectors are unit length)

Inputs are tokenized as the model was trained (prefix and suffix ids from the manifest, e.g.
[CLS] ... [SEP]), truncated to the manifest's `max_tokens` as sentence-transformers truncates them,
sorted by length and run in batches padded to their longest member (less padding, same vectors).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..bundle import resolve
from ..providers import SessionConfig, make_session
from ..tokenizer import Tokenizer
from .pooling import POOLING, normalize

DEFAULT_BATCH = 32


class Embedder:
    """A loaded embedder bundle. Thread-safe: onnxruntime sessions may be run from several threads."""

    def __init__(self, bundle_dir: Path, manifest: dict[str, Any], config: SessionConfig,
                 tokenizer_backend: str = "auto"):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest
        tok = manifest["tokenizer"]
        self.tokenizer = Tokenizer.from_file(resolve(bundle_dir, manifest, tok["file"], "tokenizer.file"),
                                             backend=tokenizer_backend)
        self._prefix: list[int] = list(tok.get("prefix_ids", []))
        self._suffix: list[int] = list(tok.get("suffix_ids", []))
        self._pad = int(tok["pad_token_id"])
        emb = manifest["embedding"]
        self.dim: int = int(emb["dim"])
        self.pooling: str = emb["pooling"]
        self.normalized: bool = bool(emb.get("normalize", False))
        self._max_len = int(emb["max_tokens"])
        self.batch_size = int(emb.get("batch_size") or DEFAULT_BATCH)
        graph = manifest["graph"]
        self.session = make_session(resolve(bundle_dir, manifest, graph["files"]["encoder"], "graph.files.encoder"), config)

    @property
    def max_tokens(self) -> int:
        """The most content tokens one input holds; the rest of a longer text is not seen."""
        return self._max_len - len(self._prefix) - len(self._suffix)

    @property
    def identity(self) -> dict[str, str]:
        """What makes two embedders give the same vectors: the graph, its weights, the tokenizer and the
        pooling. An index records it, and refuses vectors from another model."""
        files = self.manifest["files"]
        names = sorted({*self.manifest["graph"]["files"].values(), self.manifest["tokenizer"]["file"]} |
                       {n for n in files if n.endswith(".data")})
        basis = {"files": {n: files[n]["sha256"] for n in names if n in files},
                 "embedding": self.manifest["embedding"], "tokenizer": {k: self.manifest["tokenizer"].get(k) for k in
                                                                        ("prefix_ids", "suffix_ids", "pad_token_id")}}
        digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
        return {"name": str(self.manifest.get("name", self.bundle_dir.name)), "fingerprint": digest}

    def count_tokens(self, text: str) -> int:
        """Content tokens of `text` (no special tokens): chunkers keep chunks within `max_tokens`."""
        return len(self.tokenizer.encode(text))

    def token_ids(self, text: str) -> list[int]:
        """The ids the encoder sees for `text`: prefix + content (truncated) + suffix."""
        return self._prefix + self.tokenizer.encode(text)[: self.max_tokens] + self._suffix

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Sentence vectors of `texts`: float32 [len(texts), dim], unit length if the model normalises."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts; for one text use embed([text])")
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"embed() takes texts (str), got {type(t).__name__}")
        batch = int(batch_size or self.batch_size)
        if batch < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        ids = [self.token_ids(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            hidden = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            out[rows] = POOLING[self.pooling](hidden, mask)
        return normalize(out) if self.normalized else out

    def __repr__(self) -> str:
        return f"Embedder({self.manifest.get('name', self.bundle_dir.name)!r}, dim={self.dim}, pooling={self.pooling})"
