"""Architecture registry: one module per HF ``model_type``, resolved by import.

Adding an architecture = adding ``<model_type>.py`` here with a ``ModelArgs`` dataclass and a
``fake()`` tiny config, and its name to ``SUPPORTED``; tests/exporters check that every name in
``SUPPORTED`` exports and matches transformers.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from edge_sdk.errors import UnsupportedModelError

from .base import DecoderArgs

SUPPORTED: tuple[str, ...] = ("llama", "qwen2", "qwen3", "gemma3_text", "phi3")
# GGUF `general.architecture` names that differ from the HF model_type.
GGUF_NAMES: dict[str, str] = {"gemma3": "gemma3_text"}


def get_module(model_type: str) -> ModuleType:
    model_type = GGUF_NAMES.get(model_type, model_type)
    if model_type not in SUPPORTED:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; supported architectures: {', '.join(SUPPORTED)}. "
            "Pick a model of one of these families (SmolLM2, TinyLlama, Llama 3.x, Qwen2.5, Qwen3, Gemma 3, Phi-3/Phi-4-mini)."
        )
    return importlib.import_module(f"{__name__}.{model_type}")


def args_from_config(config: dict[str, Any]) -> DecoderArgs:
    """HF ``config.json`` dict -> the architecture's ``ModelArgs``."""
    model_type = config.get("model_type")
    if not model_type:
        raise UnsupportedModelError("config.json has no 'model_type'; cannot tell which architecture this is.")
    return get_module(model_type).ModelArgs.from_config(config)


__all__ = ["SUPPORTED", "DecoderArgs", "get_module", "args_from_config"]
