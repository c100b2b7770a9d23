"""A LoRA adapter as the run-time slots of a fused graph (runtime/lora): one A and one B per packed linear.

The graph packs q/k/v into one matrix and gate/up into another, so their updates are packed the same
way: A_slot = [A_q; A_k; A_v] stacked along the rank ([in, r_q + r_k + r_v] once transposed) and B_slot
block-diagonal, each projection's B^T in its own rows and its own output columns. Then
x @ A_slot @ B_slot = [x A_q^T B_q^T, x A_k^T B_k^T, x A_v^T B_v^T], what PEFT adds to each. The
scale (alpha / r, or alpha / sqrt(r) with rsLoRA) is folded into B.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sdk.runtime.lora import SLOTS

from .peft_lora import LoraAdapter, check_against


def slot_dims(args, weights: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """[in, out] of each packed linear, as the manifest's lora.slots records them."""
    dims = {}
    for slot, logicals in SLOTS.items():
        names = [args.weight_name(lg, 0) for lg in logicals]
        dims[slot] = [int(weights[names[0]].shape[1]), int(sum(weights[n].shape[0] for n in names))]
    return dims


def pack_adapter(adapter: LoraAdapter, args, weights: dict[str, np.ndarray], base_names: list[str]) -> dict[str, np.ndarray]:
    """{"{layer}.{slot}.a": [in, R], "{layer}.{slot}.b": [R, out]} for every slot the adapter changes."""
    check_against(adapter, weights, base_names)
    out: dict[str, np.ndarray] = {}
    used = set()
    for i in range(args.num_hidden_layers):
        for slot, logicals in SLOTS.items():
            names = [args.weight_name(lg, i) for lg in logicals]
            widths = [weights[n].shape[0] for n in names]
            fused = args.fused_weight(slot, i)  # Phi-3's qkv_proj / gate_up_proj: the slot's whole matrix
            if fused is not None and fused in adapter.modules:
                names, widths = [fused], [sum(widths)]
            mods = [adapter.modules.get(n) for n in names]
            if not any(mods):
                continue
            n_in = weights[names[0]].shape[1]
            rank = sum(m.rank for m in mods if m)
            a = np.zeros((n_in, rank), np.float32)
            b = np.zeros((rank, sum(widths)), np.float32)
            r0, c0 = 0, 0
            for m, width in zip(mods, widths):
                if m is not None:
                    a[:, r0:r0 + m.rank] = m.a.T
                    b[r0:r0 + m.rank, c0:c0 + width] = (m.scale * m.b.astype(np.float64)).T.astype(np.float32)
                    r0 += m.rank
                    used.add(m.weight)
                c0 += width
            out[f"{i}.{slot}.a"], out[f"{i}.{slot}.b"] = a, b
    missing = sorted(set(adapter.modules) - used)
    if missing:  # e.g. a module of a layer the model does not have
        from edge_sdk.errors import UnsupportedModelError

        raise UnsupportedModelError(f"adapter {adapter.name!r} changes {missing[0]}, which no slot of this model holds")
    return out


def write_adapter_file(arrays: dict[str, np.ndarray], path: Path) -> None:
    """An uncompressed .npz (the device reads it with numpy, allow_pickle=False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
