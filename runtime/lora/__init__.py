"""LoRA adapters switched at run time, without reloading the model.

A bundle exported with adapters (`edge-sdk export ... --adapters name=PEFT_DIR`) has a graph whose
packed linear layers (qkv, o, gate_up, down of every layer) each add x @ A @ B, with A [in, r] and
B [r, out] as graph inputs. An adapter is a file of those matrices (scale folded into B); switching
binds another file's tensors, and "no adapter" binds rank-0 tensors, which add exactly zero.

slots.py  the slot names, the adapter file format, and turning a file into onnxruntime values
"""
from __future__ import annotations

from .slots import SLOTS, AdapterSet, input_name

__all__ = ["SLOTS", "AdapterSet", "input_name"]
