"""What an export does with LoRA adapters, decided and checked before any slow work.

--adapter PEFT_DIR    merged into the weights (merge.py): every flavour and recipe takes it, and validation
                      compares the bundle with PEFT's model, the base with the adapter applied;
--adapters NAME=DIR   kept switchable at run time (slots.py): the fused graph takes each layer's low-rank
                      update as inputs and each adapter is a file of its own. The CPU flavour only: a static
                      NPU graph holds its weights as constants (a QNN context binary bakes them in).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_sdk.errors import UnsupportedModelError

from .merge import merge_adapter
from .peft_lora import LoraAdapter, read_adapter
from .slots import pack_adapter, slot_dims, write_adapter_file


@dataclass
class AdapterPlan:
    merged: LoraAdapter | None = None  # --adapter
    switchable: dict[str, LoraAdapter] = field(default_factory=dict)  # --adapters, by name

    def __bool__(self) -> bool:
        return self.merged is not None or bool(self.switchable)

    def merge(self, weights: dict, hf_model, base_names: list[str], progress):
        """(the weights with the --adapter merged, the model validation compares against: PEFT's)."""
        if self.merged is None:
            return weights, hf_model
        from ..references import peft_reference

        progress.stage(f"merging the adapter {self.merged.name} into the weights")
        return merge_adapter(weights, self.merged, base_names), peft_reference(hf_model, self.merged.path)

    def pack(self, args, weights: dict, base_names: list[str]) -> dict[str, dict]:
        """{name: slot matrices} of the switchable adapters, for the weights as the emitter reads them."""
        return {n: pack_adapter(a, args, weights, base_names) for n, a in self.switchable.items()}

    def write(self, folder: Path, packed: dict[str, dict], args, weights: dict) -> dict[str, Any]:
        """The adapter files, and the manifest sections this plan adds ({} without adapters)."""
        sections: dict[str, Any] = {}
        if self.merged is not None:
            sections["adapter"] = {"merged": True, **self.merged.describe()}
        if self.switchable:
            lora = {"layers": args.num_hidden_layers, "slots": slot_dims(args, weights), "adapters": {}}
            for name, adapter in self.switchable.items():
                file = f"adapters/{name}.npz"
                write_adapter_file(packed[name], folder / file)
                lora["adapters"][name] = {"file": file, **adapter.describe()}
            sections["lora"] = lora
        return sections

    def bundle_name(self, name: str) -> str:
        """A merged adapter is part of the model, so of its name."""
        return f"{name}+{self.merged.name.lower()}" if self.merged is not None else name


def plan_adapters(adapter: str | Path | None, adapters: dict[str, str | Path] | None, profile, progress) -> AdapterPlan:
    """Read and check --adapter / --adapters for this device profile (before minutes of loading)."""
    plan = AdapterPlan()
    if adapter is not None:
        plan.merged = read_adapter(adapter)
        progress.note(f"adapter {plan.merged.name}: LoRA rank {plan.merged.describe()['rank']}, "
                      f"{len(plan.merged.modules)} modules ({', '.join(plan.merged.targets)})")
    if not adapters:
        return plan
    from edge_sdk.runtime.lora.slots import MAX_ADAPTERS, valid_name

    if profile.flavour != "fused":
        raise UnsupportedModelError(
            f"run-time adapters (--adapters) need the CPU graph; {profile.name} compiles a static graph whose weights "
            "the NPU holds as constants (a QNN context binary bakes them in), so there an adapter is merged: "
            "--adapter PEFT_DIR")
    if len(adapters) > MAX_ADAPTERS:
        raise UnsupportedModelError(f"at most {MAX_ADAPTERS} adapters per bundle, got {len(adapters)}")
    for name, path in adapters.items():
        if not valid_name(name):
            raise UnsupportedModelError(f"adapter name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
        plan.switchable[name] = lora = read_adapter(path, name)
        progress.note(f"adapter {name}: LoRA rank {lora.describe()['rank']}, {len(lora.modules)} modules, "
                      "switchable at run time")
    return plan
