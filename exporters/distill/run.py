"""`edge-sdk distill`: teacher answers -> a LoRA adapter of the bundle's model, with a before/after report.

The student is the transformers model of the source the bundle was exported from (its manifest's
provenance), in fp32; the prompts are tokenized by the bundle's own chat template and tokenizer. The output
folder is a PEFT adapter (`edge-sdk adapter add BUNDLE NAME=DIR`, `edge-sdk export SOURCE --adapter DIR`)
with report.json and the split beside it; it appears whole or not at all, and `--force` replaces only a
previous distilled adapter, never another folder (exporters/staging.py, as for bundles and device builds).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ...errors import DistillDataError, DistillError
from ..staging import check_output, staging
from . import data as data_mod
from .report import evaluate, table
from .train import TrainConfig, encode_example, train_lora


# The output's marker for exporters/staging: report.json says what wrote the folder, so --force can tell a
# previous distilled adapter from a folder of the user's files.
MARKER, FORMAT, KIND = "report.json", "edge-sdk-distilled-adapter", "distilled adapter"


def student_source(manifest: dict, bundle: Path, override: str | None = None):
    """The ModelSource the bundle was exported from (or `override`): the student's weights."""
    from ..sources import resolve

    spec = override or (manifest.get("provenance") or {}).get("source")
    if not spec:
        raise DistillError(f"{bundle}'s manifest records no source model to train the student from: pass --source "
                           f"(the model it was exported from: a folder, a .gguf file, a hub id or alias)")
    try:
        return resolve(str(spec))
    except Exception as e:  # SourceError and friends: one line for the user
        raise DistillError(f"the bundle was exported from {spec!r}, which cannot be loaded here ({e}); pass --source "
                           f"with a copy of that model") from None


def distill(bundle: str | os.PathLike, output: str | os.PathLike, *, data: list[str] | None = None,
            teacher: str | None = None, teacher_model: str | None = None, teacher_key: str | None = None,
            prompts: str | None = None, bake_system: str | None = None, source: str | None = None,
            config: TrainConfig | None = None, held_out: float = 0.2, threshold: float | None = None,
            max_new_tokens: int = 64, max_len: int = 512, ttft_runs: int = 5, force: bool = False,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train a LoRA adapter of `bundle`'s model on a teacher's answers; returns the report (also report.json).

    The teacher is exactly one of: `data` (teacher-log folders / JSONL records), `teacher` + `prompts` (an
    OpenAI-compatible server asked each prompt), `bake_system` + `prompts` (the bundle itself with that long
    system prompt: the adapter learns to answer the same without it)."""
    import edge_sdk

    from ...runtime.hybrid import DEFAULT_THRESHOLD

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    config = config or TrainConfig()
    bundle, output = Path(bundle), Path(os.path.abspath(output))
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if sum(x is not None for x in (data or None, teacher, bake_system)) != 1:
        raise DistillError("give exactly one teacher: --data FILE..., --teacher URL --prompts FILE, or "
                           "--bake-system FILE --prompts FILE")
    if data and prompts:
        raise DistillError("--prompts is for --teacher or --bake-system: with --data the records hold the prompts")
    if (teacher or bake_system) and not prompts:
        raise DistillError("--teacher and --bake-system need --prompts FILE (the questions to ask)")
    check_output(output, force, marker=MARKER, fmt=FORMAT, kind=KIND)  # before minutes of work
    system = None
    if bake_system is not None:
        path = Path(bake_system).expanduser()
        if not path.is_file():
            raise DistillDataError(f"{path}: no such system prompt file")
        try:
            system = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as e:
            raise DistillDataError(f"{path}: the system prompt is not UTF-8 text ({e})") from None
        if not system:
            raise DistillDataError(f"{path}: the system prompt is empty")

    device_model = edge_sdk.load(bundle, kind="decoder")
    if device_model.template is None:
        raise DistillError(f"{bundle} has no chat template (a base model): distillation trains on chat answers")
    src = student_source(device_model.manifest, bundle, source)  # fail before asking a teacher anything

    if data:
        examples = data_mod.read_examples(data)
    else:
        convs = data_mod.read_prompts(prompts)
        if teacher:
            from .teacher import ask_server
            examples = ask_server(teacher, convs, model=teacher_model, api_key=teacher_key,
                                  max_tokens=max_new_tokens, log=log)
        else:
            from .teacher import ask_bundle
            examples = ask_bundle(device_model, system, convs, max_new_tokens=max_new_tokens, log=log)
    distinct = data_mod.dedupe(examples)
    train, held = data_mod.split(distinct, held_out, config.seed)
    log(f"distill: {len(examples)} records, {len(distinct)} distinct: {len(train)} to train on, {len(held)} held out")

    student = src.load_model()
    penalty = float(device_model.generation_defaults.get("repetition_penalty", 1.0))
    judge = dict(threshold=threshold, max_new_tokens=max_new_tokens, repetition_penalty=penalty)
    before = evaluate(student, device_model, held, **judge)
    pad = device_model.manifest["tokenizer"].get("pad_token_id")
    pad = device_model.eos_token_ids[0] if pad is None else int(pad)
    enc = [encode_example(device_model, e.chat, e.answer, max_len) for e in train]
    enc_held = [encode_example(device_model, e.chat, e.answer, max_len) for e in held]
    started = time.monotonic()
    peft_model, history = train_lora(student, enc, enc_held, config, pad, log)
    seconds = time.monotonic() - started
    after = evaluate(peft_model, device_model, held, **judge)
    report: dict[str, Any] = {
        "format": FORMAT, "v": 1, "bundle": str(bundle), "student": src.spec,
        "teacher": ("log" if data else f"server {teacher}" if teacher else "bundle with the system prompt (baking)"),
        "records": len(examples), "distinct": len(distinct), "train": len(train), "held_out": len(held),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()},
        "training": {**history.to_json(), "seconds": round(seconds, 1)},
        "before": before, "after": after}

    with staging(output, force, marker=MARKER, fmt=FORMAT, kind=KIND) as partial:
        peft_model.save_pretrained(partial)
        _name_base(partial, device_model.manifest)
        (partial / "train.jsonl").write_text("".join(json.dumps(e.to_json()) + "\n" for e in train))
        (partial / "held_out.jsonl").write_text("".join(json.dumps(e.to_json()) + "\n" for e in held))
        if system is not None:
            from .bake import payoff
            report["baking"] = payoff(bundle, partial, system, held, max_new_tokens=max_new_tokens, runs=ttft_runs,
                                      log=log)
        (partial / MARKER).write_text(json.dumps(report, indent=1) + "\n")
    log(table(report))
    return report


def _name_base(adapter_dir: Path, manifest: dict) -> None:
    """Name the bundle's model as the adapter's base (its hub id where known), not the local cache path the
    student happened to be loaded from: `adapter add` checks the name against the bundle's provenance."""
    prov = manifest.get("provenance") or {}
    name = prov.get("hub_id") or prov.get("source")
    if not name:
        return
    path = adapter_dir / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg["base_model_name_or_path"] = str(name)
    path.write_text(json.dumps(cfg, indent=2) + "\n")
