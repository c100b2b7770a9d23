"""A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), read as data.

Every targeted linear layer W [out, in] gets y = x W^T + scale * (x A^T) B^T with A [r, in] and
B [out, r]; scale = alpha / r, or alpha / sqrt(r) with rsLoRA. `rank_pattern` and `alpha_pattern`
override r and alpha for the modules whose name matches, as PEFT matches them. The folder is
untrusted input: its size, its JSON and every shape are checked before anything is merged.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import SourceError, UnsupportedModelError

CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors",)
MAX_ADAPTER_BYTES = 4 << 30
# PEFT module names (the Llama family's) -> the logical names of exporters/architectures/base.py; Phi-3's
# checkpoint keeps q/k/v and gate/up fused, so its adapters target those modules, which are whole slots.
TARGETS = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
           "down_proj": "down", "qkv_proj": "qkv", "gate_up_proj": "gate_up"}
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


@dataclass
class LoraModule:
    """One adapted linear: the HF weight it changes, and its low-rank update."""

    weight: str  # HF state-dict name of the base weight, e.g. model.layers.3.self_attn.q_proj.weight
    a: np.ndarray  # [r, in] float32
    b: np.ndarray  # [out, r] float32
    scale: float

    @property
    def rank(self) -> int:
        return self.a.shape[0]

    def delta(self) -> np.ndarray:
        """scale * B @ A: [out, in], what merging adds to W (computed in float64, rounded once)."""
        return (self.scale * (self.b.astype(np.float64) @ self.a.astype(np.float64))).astype(np.float32)


@dataclass
class LoraAdapter:
    name: str
    path: Path
    config: dict[str, Any]
    modules: dict[str, LoraModule] = field(default_factory=dict)  # by HF weight name
    sha256: str = ""  # of the config and weights files, in that order

    @property
    def targets(self) -> list[str]:
        return sorted({m.weight.rsplit(".", 2)[-2] for m in self.modules.values()})

    def describe(self) -> dict[str, Any]:
        ranks = sorted({m.rank for m in self.modules.values()})
        return {"name": self.name, "source": self.path.name, "sha256": self.sha256, "peft_type": "LORA",
                "rank": ranks[0] if len(ranks) == 1 else ranks, "lora_alpha": self.config.get("lora_alpha"),
                "use_rslora": bool(self.config.get("use_rslora")), "targets": self.targets,
                "modules": len(self.modules), "base_model": self.config.get("base_model_name_or_path"),
                # per-module ranks and scales, for `edge-sdk adapter merge` (which reads the bundle's packed file)
                **({"r": self.config.get("r", 8), "rank_pattern": self.config.get("rank_pattern") or {},
                    "alpha_pattern": self.config.get("alpha_pattern") or {}}
                   if self.config.get("rank_pattern") or self.config.get("alpha_pattern") else {})}


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rule: a pattern key applies to a module whose name ends with it (as a regex)."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def read_adapter(path: str | Path, name: str | None = None) -> LoraAdapter:
    """Read and check a PEFT LoRA folder; UnsupportedModelError for what we cannot merge or switch."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise SourceError(f"adapter {path} is not a folder; pass the folder PEFT's save_pretrained wrote "
                          f"({CONFIG} + adapter_model.safetensors)")
    cfg_file = path / CONFIG
    weights_file = next((path / w for w in WEIGHTS if (path / w).is_file()), None)
    if not cfg_file.is_file() or weights_file is None:
        raise SourceError(f"{path} is not a PEFT adapter folder: it needs {CONFIG} and adapter_model.safetensors "
                          "(adapter_model.bin, a pickle, is not read: re-save with safe_serialization=True)")
    if cfg_file.stat().st_size > 1 << 20 or weights_file.stat().st_size > MAX_ADAPTER_BYTES:
        raise SourceError(f"{path}: the adapter files are larger than an adapter can be; not reading them")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SourceError(f"{cfg_file} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise SourceError(f"{cfg_file} must hold a JSON object")
    _check_config(config, cfg_file)

    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as e:
        from edge_sdk import install_hint

        raise SourceError(f"reading a PEFT adapter needs the safetensors package: {install_hint('export')}") from e

    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as e:
        raise SourceError(f"{weights_file} is not a readable safetensors file ({e})") from None
    r_default, alpha_default = int(config.get("r", 8)), float(config.get("lora_alpha", 8))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in tensors.items():
        m = _KEY.match(key)
        if not m:
            raise UnsupportedModelError(f"{weights_file.name} holds {key!r}, which is not a LoRA A/B matrix of a "
                                        "linear layer (embedding adapters, trained biases and saved modules are "
                                        "not supported)")
        pairs.setdefault(m["module"], {})[m["ab"]] = tensor
    adapter = LoraAdapter(name or path.name, path, config, sha256=_sha256(cfg_file, weights_file))
    for module, ab in sorted(pairs.items()):
        kind = module.rsplit(".", 1)[-1]
        if kind not in TARGETS:
            raise UnsupportedModelError(f"the adapter targets {module!r}; supported targets: {', '.join(TARGETS)}")
        if set(ab) != {"A", "B"}:
            raise SourceError(f"{weights_file.name}: {module} has lora_{'A' if 'A' not in ab else 'B'} missing")
        a, b = ab["A"].astype(np.float32), ab["B"].astype(np.float32)
        r = int(_pattern_value(config.get("rank_pattern"), module, r_default))
        alpha = float(_pattern_value(config.get("alpha_pattern"), module, alpha_default))
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != r or b.shape[1] != r:
            raise SourceError(f"{weights_file.name}: {module} has A {list(a.shape)} and B {list(b.shape)}, not rank "
                              f"{r} as {CONFIG} says")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise SourceError(f"{weights_file.name}: {module} holds NaN or infinite values")
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        adapter.modules[f"{module}.weight"] = LoraModule(f"{module}.weight", a, b, scale)
    if not adapter.modules:
        raise SourceError(f"{weights_file} holds no LoRA matrices")
    return adapter


def _check_config(config: dict, where: Path) -> None:
    if config.get("peft_type", "LORA") != "LORA":
        raise UnsupportedModelError(f"{where}: peft_type {config.get('peft_type')!r} is not supported (only LORA)")
    if config.get("use_dora"):
        raise UnsupportedModelError(f"{where}: DoRA adapters (use_dora) are not supported; train a plain LoRA")
    if config.get("fan_in_fan_out"):
        raise UnsupportedModelError(f"{where}: fan_in_fan_out adapters (GPT-2 style Conv1D) are not supported")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise UnsupportedModelError(f"{where}: adapters that train biases or save whole modules (bias="
                                    f"{config.get('bias')!r}, modules_to_save={config.get('modules_to_save')}) are "
                                    "not supported")
    for key in ("r", "lora_alpha"):
        v = config.get(key, 8)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 4096:
            raise SourceError(f"{where}: {key} must be a number in (0, 4096], got {v!r}")


def _sha256(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def check_against(adapter: LoraAdapter, weights: dict[str, np.ndarray], base_names: list[str]) -> None:
    """Refuse an adapter made for another base model: a module the base does not have, a shape that does
    not fit, or a base model named (as a hub id) that is none of this source's names."""
    for m in adapter.modules.values():
        if m.weight not in weights:
            raise UnsupportedModelError(f"adapter {adapter.name!r} changes {m.weight}, which this base model does not "
                                        "have: it was trained for another model")
        out_f, in_f = weights[m.weight].shape
        if m.a.shape[1] != in_f or m.b.shape[0] != out_f:
            raise UnsupportedModelError(
                f"adapter {adapter.name!r} does not fit this base model: {m.weight} is [{out_f}, {in_f}] here, the "
                f"adapter's update is [{m.b.shape[0]}, {m.a.shape[1]}] (trained for another model?)")
    named = str(adapter.config.get("base_model_name_or_path") or "")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", named) and not Path(named).exists():  # a hub id, not a local path
        wanted = {n.lower() for n in base_names if n}
        if wanted and named.lower() not in wanted and named.split("/")[-1].lower() not in wanted:
            raise UnsupportedModelError(f"adapter {adapter.name!r} was trained on {named}, not on this model "
                                        f"({', '.join(sorted(n for n in base_names if n))})")
