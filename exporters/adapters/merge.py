"""Merging a LoRA adapter into the base weights: W' = W + scale * B @ A, before the graph is emitted.

Merging first means every flavour and recipe takes the adapter for free (the int4 recipe quantizes
the merged W'; the NPU flavour calibrates on it), and the bundle runs as fast as the base model.
"""
from __future__ import annotations

import numpy as np

from .peft_lora import LoraAdapter, check_against


def merge_adapter(weights: dict[str, np.ndarray], adapter: LoraAdapter, base_names: list[str]) -> dict[str, np.ndarray]:
    """A copy of `weights` with `adapter` merged; the base weights are left as they were."""
    check_against(adapter, weights, base_names)
    merged = dict(weights)
    for m in adapter.modules.values():
        merged[m.weight] = weights[m.weight] + m.delta()
    return merged
