"""Distillation into a LoRA adapter (host side: torch, transformers, PEFT from the export extra).

The device model is the student, trained from the source its bundle was exported from; the teacher is a
log of the fallback's answers (runtime/hybrid's teacher log), any OpenAI-compatible server, or the bundle
itself under a long system prompt (prompt baking). One idea per module:

- data: records (teacher log, JSONL, prompts), de-duplicated, a seeded held-out split
- teacher: answers from an OpenAI-compatible server, or from the bundle with a system prompt (baking)
- train: LoRA on the answer tokens only, early stopping on the held-out loss
- report: student vs teacher before and after (exact match, token F1, the router's escalation rate)
- run: the command: student from the manifest's provenance, atomic output, report.json
"""
from __future__ import annotations

from .run import distill

__all__ = ["distill"]
