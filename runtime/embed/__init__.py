"""Sentence embeddings on the device: an embedder bundle (manifest kind "embedder") run with onnxruntime.

    emb = edge_sdk.load("bundles/minilm")          # an Embedder, because the manifest says kind "embedder"
    vectors = emb.embed(["first text", "second"])  # float32 [2, emb.dim], unit length when the model says so

embedder.py  the Embedder: tokenize, batch, run the encoder graph, pool
pooling.py   mean / cls / max pooling and normalisation as numpy functions
"""
from __future__ import annotations

from .embedder import Embedder

__all__ = ["Embedder"]
