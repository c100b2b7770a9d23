"""LoRA adapters (PEFT) on the host side: read one, check it against the base model, merge it.

peft_lora.py  a PEFT LoRA folder read without PEFT: config, A/B matrices, the scale of each module
merge.py      W + scale * B @ A into the base weights, before any graph is emitted (--adapter)
slots.py      the same update as run-time slot matrices of the fused graph (--adapters, edge-sdk adapter add)
plan.py       what an export does with them: merge (--adapter) or keep switchable (--adapters), checked first
add.py        adding a switchable adapter to an exported bundle (edge-sdk adapter add)
"""
from __future__ import annotations

from .merge import merge_adapter
from .slots import pack_adapter, slot_dims, write_adapter_file
from .peft_lora import LoraAdapter, LoraModule, read_adapter
from .plan import AdapterPlan, plan_adapters

__all__ = ["LoraAdapter", "LoraModule", "read_adapter", "merge_adapter", "pack_adapter", "slot_dims", "write_adapter_file",
           "AdapterPlan", "plan_adapters"]
