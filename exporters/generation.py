"""The manifest's `generation` section: the model's own sampling defaults, read as transformers reads them.

A Hugging Face model folder may carry `generation_config.json`, its author's sampling choice. Its
convention (transformers' GenerationConfig): `do_sample` false, or absent, means greedy whatever the
temperature says; a field the file leaves out takes transformers' default (temperature 1.0, top_k 50,
top_p 1.0, repetition_penalty 1.0), which is what `model.generate()` would use with that file.

A file that sets none of the sampling fields (most are written from config.json and only repeat the
token ids) makes no choice, and a GGUF carries no such file: edge-sdk's defaults apply there
(runtime/generation_defaults.py: greedy with a repetition penalty that stops small models looping).
`source` in the section says which it was.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edge_sdk.errors import SourceError
from edge_sdk.runtime.generation_defaults import GENERATION_DEFAULTS

FILE = "generation_config.json"
SAMPLING_FIELDS = ("do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty")
# What transformers' generate() uses for a field the file leaves out or sets to null
# (GenerationConfig._get_default_generation_params; min_p None: that step is off)
HF_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "min_p": None, "repetition_penalty": 1.0}
# Fields transformers applies that the runtime does not: named in `source`, so nobody is surprised.
NOT_APPLIED = ("no_repeat_ngram_size", "typical_p", "epsilon_cutoff", "eta_cutoff", "encoder_repetition_penalty",
               "length_penalty", "num_beams", "bad_words_ids", "suppress_tokens")
MAX_BYTES = 1 << 20


def generation_section(model_dir: Path | None) -> dict[str, Any]:
    """The `generation` section for a model in `model_dir` (None: a source with no folder of its own, a GGUF)."""
    path = Path(model_dir) / FILE if model_dir is not None else None
    config = _read(path) if path is not None and path.is_file() else None
    base = {k: GENERATION_DEFAULTS[k] for k in ("max_new_tokens", "temperature", "top_k", "top_p", "min_p",
                                                  "repetition_penalty")}
    if config is None:
        return {**base, "source": "edge-sdk defaults: the source has no generation_config.json"}
    max_new = config.get("max_new_tokens")
    if max_new is not None:
        base["max_new_tokens"] = _number(path, config, "max_new_tokens", integer=True, lo=1)
    if not any(config.get(k) is not None for k in SAMPLING_FIELDS):
        return {**base, "source": "edge-sdk defaults: generation_config.json sets no sampling field"}
    do_sample = config.get("do_sample", False)
    if not isinstance(do_sample, bool):
        raise SourceError(f"{path}: do_sample must be true or false, got {do_sample!r}; fix or delete the file")
    # null counts as unset, as in transformers: its own default then applies
    hf = {k: config[k] if config.get(k) is not None else HF_DEFAULTS[k] for k in HF_DEFAULTS}
    temperature = _number(path, hf, "temperature", lo=0.0)  # checked even when greedy: a broken file is an error
    section = {
        "max_new_tokens": base["max_new_tokens"],
        "temperature": temperature if do_sample else 0.0,  # greedy unless the author samples
        "top_k": _number(path, hf, "top_k", integer=True, lo=0),
        "top_p": _number(path, hf, "top_p", lo=0.0, hi=1.0, lo_open=True),
        "min_p": _number(path, hf, "min_p", lo=0.0, hi=1.0, hi_open=True) if hf["min_p"] is not None else 0.0,
        "repetition_penalty": _number(path, hf, "repetition_penalty", lo=0.0, lo_open=True),
    }
    ignored = [k for k in NOT_APPLIED if config.get(k) not in (None, 0, 1, 1.0, [], False)]
    note = f" (not applied: {', '.join(ignored)})" if ignored else ""
    return {**section, "source": f"the model's generation_config.json{note}"}


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SourceError(f"{path} is over {MAX_BYTES >> 20} MB; not a generation config")
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SourceError(f"{path} cannot be read as JSON ({str(e)[:200]}); fix or delete the file") from None
    if not isinstance(config, dict):
        raise SourceError(f"{path} must hold a JSON object, got {type(config).__name__}; fix or delete the file")
    return config


def _number(path, config, key, *, integer=False, lo=None, hi=None, lo_open=False, hi_open=False):
    value = config[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if ok and not isinstance(value, bool) and (integer or math.isfinite(value)) \
            and (lo is None or (value > lo if lo_open else value >= lo)) \
            and (hi is None or (value < hi if hi_open else value <= hi)):
        return value
    raise SourceError(f"{path}: {key} = {value!r} is not a valid value; fix or delete the file")
