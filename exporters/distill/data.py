"""Distillation data: (conversation, teacher answer) examples read from a teacher log, JSONL files or a
prompts file; de-duplicated; split into training and held-out sets by a seeded shuffle.

A record is untrusted input: each file is read up to MAX_FILE_BYTES and MAX_RECORDS examples in all, and a
line that is not a record is an error naming the file and line (a teacher-log folder is read as the router
wrote it: `read_log` skips torn lines).
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DistillDataError

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_RECORDS = 100_000
MAX_TEXT = 64 * 1024  # characters in one prompt or answer: a distillation example, not a book
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    messages: tuple[tuple[str, str], ...]  # (role, content) of the conversation, ending with the user's turn
    answer: str  # the teacher's reply

    @property
    def chat(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.chat, "answer": self.answer}


def messages_of(record: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The conversation of a record: `messages` (chat), or `prompt` (one user turn)."""
    if isinstance(record, str):
        record = {"prompt": record}
    if not isinstance(record, dict):
        raise DistillDataError(f"{where}: expected a JSON object with \"messages\" or \"prompt\", got "
                               f"{type(record).__name__}")
    if isinstance(record.get("messages"), list):
        out = []
        for m in record["messages"]:
            if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
                raise DistillDataError(f"{where}: every message needs a role ({', '.join(ROLES)}) and text content")
            out.append((m["role"], _bounded(m["content"], where)))
        if not out or out[-1][0] != "user":
            raise DistillDataError(f"{where}: the conversation must end with the user's turn (the teacher answers it)")
        return tuple(out)
    if isinstance(record.get("prompt"), str) and record["prompt"].strip():
        return (("user", _bounded(record["prompt"], where)),)
    raise DistillDataError(f"{where}: a record needs \"messages\" (a list of chat messages) or \"prompt\" (text)")


def _bounded(text: str, where: str) -> str:
    if len(text) > MAX_TEXT:
        raise DistillDataError(f"{where}: a text of {len(text)} characters (the limit is {MAX_TEXT})")
    return text


def example_of(record: Any, where: str) -> Example:
    answer = record.get("answer") if isinstance(record, dict) else None
    if not isinstance(answer, str) or not answer.strip():
        raise DistillDataError(f"{where}: a record needs the teacher's \"answer\" (non-empty text)")
    return Example(messages_of(record, where), _bounded(answer, where))


def _jsonl(path: Path):
    """(where, decoded value) of each non-blank line of a JSONL file."""
    if not path.is_file():
        raise DistillDataError(f"{path}: no such file (give a teacher log folder, a JSONL file of records, or a "
                               f"prompts file)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DistillDataError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB: split it")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                yield where, json.loads(raw)
            except ValueError as e:  # UnicodeDecodeError is a ValueError too
                raise DistillDataError(f"{where}: not a JSON line ({e})") from None


def read_examples(paths: list[str | os.PathLike]) -> list[Example]:
    """Examples from teacher-log folders (runtime/hybrid's `--learn DIR`) and JSONL files of records
    ({"messages": [...] | "prompt": "...", "answer": "..."}, the teacher log's own fields), in order."""
    from ...runtime.hybrid import read_log

    out: list[Example] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            items = ((f"{path} record {i}", r) for i, r in enumerate(read_log(path), 1))
        else:
            items = _jsonl(path)
        for where, record in items:
            out.append(example_of(record, where))
            if len(out) > MAX_RECORDS:
                raise DistillDataError(f"more than {MAX_RECORDS} records: distil from a sample of them")
    if not out:
        raise DistillDataError(f"no records in {', '.join(map(str, paths))}: a teacher log fills with "
                               f"`edge-sdk serve --fallback ... --learn DIR`")
    return out


def read_prompts(path: str | os.PathLike) -> list[tuple[tuple[str, str], ...]]:
    """Conversations to ask a teacher: a .jsonl file ({"prompt": ...} / {"messages": [...]} / a JSON string per
    line), else a text file with one prompt per line."""
    path = Path(path).expanduser()
    if path.suffix == ".jsonl":
        convs = [messages_of(value, where) for where, value in _jsonl(path)]
    else:
        if not path.is_file():
            raise DistillDataError(f"{path}: no such prompts file (one prompt per line, or JSONL)")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DistillDataError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB: split it")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise DistillDataError(f"{path}: not UTF-8 text ({e})") from None
        convs = [(("user", _bounded(line.strip(), f"{path}:{n}")),) for n, line in enumerate(lines, 1) if line.strip()]
    if not convs:
        raise DistillDataError(f"{path}: no prompts in it")
    if len(convs) > MAX_RECORDS:
        raise DistillDataError(f"{path}: more than {MAX_RECORDS} prompts")
    return dedupe_conversations(convs)


def dedupe_conversations(convs):
    seen, out = set(), []
    for c in convs:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def dedupe(examples: list[Example]) -> list[Example]:
    """One example per conversation (the first answer given for it): a repeated question must not sit on both
    sides of the split, and must not weigh more than the others in training."""
    seen, out = set(), []
    for e in examples:
        if e.messages not in seen:
            seen.add(e.messages)
            out.append(e)
    return out


def split(examples: list[Example], held_out: float = 0.2, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, held_out): a seeded shuffle, at least 1 held-out and 2 training examples. De-duplicate first."""
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
    n_held = max(1, round(len(examples) * held_out))
    if len(examples) - n_held < 2:
        raise DistillDataError(f"{len(examples)} distinct examples are too few to hold {n_held} out and train on the "
                               f"rest: give at least {n_held + 2} (more is better: tens to thousands)")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = sorted(order[:n_held])
    train = sorted(order[n_held:])
    return [examples[i] for i in train], [examples[i] for i in held]
