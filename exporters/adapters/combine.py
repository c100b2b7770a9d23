"""Combining a bundle's run-time adapters into a new one, as PEFT's `add_weighted_adapter` does (in numpy).

    merge_adapters("bundles/smollm2", "both", [("json", 0.7), ("support", 0.3)], "cat")
    # edge-sdk adapter merge bundles/smollm2 both --from json:0.7 support:0.3 --method cat

The inputs are the bundle's own packed files (adapters/NAME.npz: A stacked, B block-diagonal with the scale
folded in), unpacked per module with the ranks and scales the manifest records; the PEFT folders they came
from are not needed. The result is written as a PEFT LoRA folder (so `export --adapter` takes it too, with
--save) and added to the bundle by `add_adapter`.

PEFT's definitions (peft/tuners/lora/model.py, peft/utils/merge_utils.py), per adapted module, for adapters i
with weight w_i and scale s_i:
- cat: A = [w_i s_i A_i] stacked along the rank, B = [B_i] side by side: exactly sum_i w_i s_i B_i A_i; the
  new rank is the sum of the adapters' ranks (different ranks allowed).
- linear / ties / dare_linear: A and B are combined separately, A with sign(w_i s_i) sqrt|w_i s_i|, B with
  sqrt|w_i s_i| (so linear is not the sum of the updates: the cross terms B_i A_j stay; PEFT calls it "a very
  rough approximation"); all adapters must have the same rank. ties keeps each tensor's `density` largest
  magnitudes, then per entry the majority sign (of the pruned tensors' sum, or count with "frequency") and
  averages the weighted entries that agree; dare_linear drops entries at random (kept with probability
  `density`, rescaled by 1/density) and adds.
- the new adapter has r = lora_alpha = the new rank and never rsLoRA: its scale is exactly 1, because the
  sources' scales are already folded into A and B. PEFT before 0.22 copied use_rslora from the first adapter, so
  a merge that began with an rsLoRA adapter was sqrt(r) too strong; PEFT 0.22 fixed that, and so do we.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import BundleError
from edge_sdk.runtime.bundle import read_manifest

from ..staging import check_output, staging

METHODS = ("linear", "cat", "ties", "dare_linear")
# --save writes through exporters/staging, as export and package do: all at once, and --force replaces only a
# folder a previous merge saved, recognised by this file (PEFT ignores files it does not know).
SAVE_MARKER, SAVE_FORMAT, SAVE_KIND = "edge_sdk_merge.json", "edge-sdk-merged-adapter", "merged adapter folder"
SIGN_METHODS = ("total", "frequency")


def merge_adapters(bundle: str | os.PathLike, name: str, parts: list[tuple[str, float]], method: str = "cat", *,
                   density: float | None = None, majority_sign: str = "total", seed: int | None = None,
                   save: str | os.PathLike | None = None, force: bool = False, source: str | None = None,
                   progress=None) -> dict[str, Any]:
    """Add to `bundle` the adapter `name`, the combination of its adapters `parts` [(adapter, weight), ...] by
    `method`; returns the new adapter's manifest entry. `save`: also keep the merged PEFT folder there."""
    from edge_sdk.runtime.lora.slots import valid_name

    if not valid_name(name):
        raise ValueError(f"adapter name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
    bundle = Path(bundle)
    manifest = read_manifest(bundle, verify=True)
    adapters = ((manifest.get("lora") or {}).get("adapters")) or {}
    if save is not None:  # before any work: never into a folder of the user's files
        check_output(Path(save), force, marker=SAVE_MARKER, fmt=SAVE_FORMAT, kind=SAVE_KIND)
    if not parts:
        raise ValueError("merging needs at least one adapter (--from NAME:WEIGHT ...)")
    for adapter, _ in parts:
        if adapter not in adapters:
            raise BundleError(f"{bundle} has no adapter {adapter!r}; its adapters: {', '.join(adapters) or 'none'}")
    if len({a for a, _ in parts}) != len(parts):
        raise ValueError("each adapter may be named once in --from")
    unpacked = [unpack(bundle, manifest, adapter) for adapter, _ in parts]
    ranks = [_max_rank(adapters[a]) for a, _ in parts]
    modules, rank = combine([(u, w) for u, (_, w) in zip(unpacked, parts)], ranks, method, density=density,
                            majority_sign=majority_sign, rng=np.random.default_rng(seed))
    first = adapters[parts[0][0]]
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": rank, "use_rslora": False,
              "target_modules": sorted({t for a, _ in parts for t in adapters[a].get("targets") or []}),
              "base_model_name_or_path": first.get("base_model"), "bias": "none", "lora_dropout": 0.0}
    merged = {"method": method, "from": [{"adapter": a, "weight": w} for a, w in parts],
              **({"density": density} if method in ("ties", "dare_linear") else {}),
              **({"majority_sign": majority_sign} if method == "ties" else {}),
              **({"seed": seed} if method == "dare_linear" else {})}
    from .add import add_adapter

    if save is None:
        with tempfile.TemporaryDirectory(prefix=f".{bundle.name}.merge.", dir=bundle.parent) as tmp:
            write_peft_folder(Path(tmp), config, modules)
            return add_adapter(bundle, name, tmp, force=force, source=source, progress=progress,
                               extra={"merged_from": merged})
    # The saved folder appears only once the bundle has taken the adapter: a refused add leaves no folder.
    with staging(Path(save), force, marker=SAVE_MARKER, fmt=SAVE_FORMAT, kind=SAVE_KIND) as folder:
        write_peft_folder(folder, config, modules)
        (folder / SAVE_MARKER).write_text(json.dumps({"format": SAVE_FORMAT, "adapter": name, "bundle": str(bundle),
                                                      "merged_from": merged}, indent=2), encoding="utf-8")
        return add_adapter(bundle, name, folder, force=force, source=source, progress=progress,
                           extra={"merged_from": merged})


def unpack(bundle: Path, manifest: dict[str, Any], name: str) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """{PEFT module name: (A [r, in], B [out, r], scale)} of a bundle's run-time adapter, from its packed file
    (verified against the manifest's hash) and the ranks and scales its manifest entry records."""
    from edge_sdk.runtime.lora import SLOTS

    from .add import _shapes
    from .peft_lora import _pattern_value

    entry = manifest["lora"]["adapters"][name]
    r_default = int(entry.get("r", entry["rank"]))  # (the manifest's schema keeps a run-time adapter's rank one int)
    alpha = float(entry["lora_alpha"])
    args, weights = _shapes(manifest)
    arrays = _read_packed(bundle, manifest, entry)
    targets = set(entry.get("targets") or [])
    out: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for i in range(args.num_hidden_layers):
        for slot, logicals in SLOTS.items():
            if f"{i}.{slot}.a" not in arrays:
                continue
            a, b = arrays[f"{i}.{slot}.a"].astype(np.float64), arrays[f"{i}.{slot}.b"].astype(np.float64)
            names = [args.weight_name(lg, i) for lg in logicals]
            widths = [weights[n].shape[0] for n in names]
            fused = args.fused_weight(slot, i)
            if fused is not None and _kind(fused) in targets:
                names, widths = [fused], [sum(widths)]
            r0 = c0 = 0
            for weight, width in zip(names, widths):
                module = weight[:-len(".weight")]
                if _kind(weight) in targets:
                    r = int(_pattern_value(entry.get("rank_pattern"), module, r_default))
                    al = float(_pattern_value(entry.get("alpha_pattern"), module, alpha))
                    scale = al / math.sqrt(r) if entry.get("use_rslora") else al / r
                    if r0 + r > a.shape[1]:
                        raise BundleError(f"adapter {name!r}: {slot} of layer {i} holds rank {a.shape[1]}, less than "
                                          "its manifest entry's targets and ranks need")
                    block = b[r0:r0 + r]
                    if np.any(block[:, :c0]) or np.any(block[:, c0 + width:]):
                        raise BundleError(f"adapter {name!r}: {slot} of layer {i} is not packed as its manifest says")
                    out[module] = (a[:, r0:r0 + r].T, block[:, c0:c0 + width].T / scale, scale)
                    r0 += r
                c0 += width
            if r0 != a.shape[1]:
                raise BundleError(f"adapter {name!r}: {slot} of layer {i} holds rank {a.shape[1]}, its manifest entry "
                                  f"accounts for {r0}")
    return out


def combine(adapters: list[tuple[dict, float]], ranks: list[int], method: str, *, density: float | None = None,
            majority_sign: str = "total", rng: np.random.Generator | None = None
            ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """({module: (A, B)} of the combined adapter, its rank) from [(unpacked adapter, weight)] as PEFT's
    add_weighted_adapter combines them (see the module docstring); `ranks`: each adapter's r (its largest)."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if majority_sign not in SIGN_METHODS:
        raise ValueError(f"majority sign must be one of {', '.join(SIGN_METHODS)}, got {majority_sign!r}")
    method = "linear" if len(adapters) == 1 else method  # as PEFT: one adapter is scaled, whatever the method
    if method in ("ties", "dare_linear"):
        if density is None or not 0.0 < density <= 1.0:
            raise ValueError(f"{method} needs a density in (0, 1] (the fraction of entries kept), got {density}")
    for _, w in adapters:
        if not math.isfinite(w):
            raise ValueError(f"adapter weights must be finite numbers, got {w}")
    if method == "cat":
        rank = sum(ranks)
    elif len(set(ranks)) != 1:
        raise ValueError(f"{method} needs adapters of one rank (these have {', '.join(map(str, ranks))}); "
                         "--method cat combines different ranks")
    else:
        rank = ranks[0]
    rng = rng or np.random.default_rng()
    out = {}
    for module in sorted({m for u, _ in adapters for m in u}):
        present = [(u[module], w) for u, w in adapters if module in u]
        if method == "cat":
            a = np.concatenate([w * s * a for (a, _, s), w in present], axis=0)
            b = np.concatenate([b for (_, b, _), _ in present], axis=1)
            a = np.pad(a, ((0, rank - a.shape[0]), (0, 0)))  # PEFT's new adapter has the summed rank everywhere
            b = np.pad(b, ((0, 0), (0, rank - b.shape[1])))
        else:
            if len({a.shape for (a, _, _), _ in present}) != 1:
                raise ValueError(f"{method}: {module} has different ranks in these adapters; use --method cat")
            signed = [w * s for (_, _, s), w in present]
            wa = np.array([math.copysign(math.sqrt(abs(x)), 1.0 if x >= 0 else -1.0) for x in signed])
            wb = np.array([math.sqrt(abs(x)) for x in signed])
            a = _task(method, [a for (a, _, _), _ in present], wa, density, majority_sign, rng)
            b = _task(method, [b for (_, b, _), _ in present], wb, density, majority_sign, rng)
        out[module] = (a.astype(np.float32), b.astype(np.float32))
    return out, rank


def _task(method: str, tensors: list[np.ndarray], weights: np.ndarray, density, majority_sign, rng) -> np.ndarray:
    """One of PEFT's merge_utils functions over tensors of one shape (each weighted by weights[i])."""
    if method == "ties":
        tensors = [_keep_largest(t, density) for t in tensors]
    elif method == "dare_linear" and density < 1.0:
        tensors = [t * (rng.random(t.shape) < density) / density for t in tensors]
    stack = np.stack(tensors)
    weighted = stack * weights[:, None, None]
    if method != "ties":
        return weighted.sum(axis=0)
    sign = np.sign(stack)
    total = stack.sum(axis=0) if majority_sign == "total" else sign.sum(axis=0)
    agree = sign == np.where(total >= 0, 1.0, -1.0)
    return (weighted * agree).sum(axis=0) / np.maximum(agree.sum(axis=0), 1)


def _keep_largest(t: np.ndarray, density: float) -> np.ndarray:
    """PEFT's magnitude pruning: the int(density * size) entries of largest magnitude, the rest zero."""
    if density >= 1.0:
        return t
    k = int(density * t.size)
    mask = np.zeros(t.size)
    if k:
        mask[np.argpartition(-np.abs(t).ravel(), k - 1)[:k]] = 1.0
    return t * mask.reshape(t.shape)


def _max_rank(entry: dict) -> int:
    """PEFT's adapter rank for combining: r, or the largest of its rank_pattern."""
    if "r" in entry:  # recorded with patterns: PEFT takes r or the largest pattern rank, used or not
        return int(max([entry["r"], *(entry.get("rank_pattern") or {}).values()]))
    rank = entry.get("rank")
    return int(max(rank) if isinstance(rank, list) else rank)


def _kind(weight: str) -> str:
    return weight.rsplit(".", 2)[-2] if weight.endswith(".weight") else weight.rsplit(".", 1)[-1]


def _read_packed(bundle: Path, manifest: dict, entry: dict) -> dict[str, np.ndarray]:
    """The adapter file as the device reads it: hashed against the manifest, every header checked first."""
    from edge_sdk.runtime.bundle.files import read_verified
    from edge_sdk.runtime.lora.slots import read_adapter_file

    lora = manifest["lora"]
    slots = {s: (int(d[0]), int(d[1])) for s, d in lora["slots"].items()}
    data = read_verified(bundle, manifest, entry["file"])
    return read_adapter_file(data, bundle / entry["file"], int(lora["layers"]), slots, rank=entry.get("rank"))


def write_peft_folder(folder: Path, config: dict[str, Any], modules: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """adapter_config.json + adapter_model.safetensors, as PEFT's save_pretrained lays them out."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for module, (a, b) in modules.items():
        tensors[f"base_model.model.{module}.lora_A.weight"] = np.ascontiguousarray(a, np.float32)
        tensors[f"base_model.model.{module}.lora_B.weight"] = np.ascontiguousarray(b, np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
