"""Token vectors -> one sentence vector, as pure numpy functions (sentence-transformers' Pooling and
Normalize modules, which the manifest's `embedding` section names).

Each takes hidden [batch, seq, dim] float32 and mask [batch, seq] (1 = token, 0 = padding).
"""
from __future__ import annotations

import numpy as np


def mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(hidden.dtype)
    # sentence-transformers clamps the count at 1e-9: an all-padding row gives zeros, not NaN.
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)


def cls(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return hidden[:, 0]


def max_(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # Padding is pushed far below any value, as sentence-transformers does with -1e9.
    return np.where(mask[..., None].astype(bool), hidden, np.float32(-1e9)).max(1)


POOLING = {"mean": mean, "cls": cls, "max": max_}


def normalize(v: np.ndarray) -> np.ndarray:
    """Unit length per row (torch.nn.functional.normalize: divides by max(norm, 1e-12))."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
