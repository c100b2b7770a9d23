"""The teacher log (opt-in): every exchange the fallback answered, as a local JSONL dataset to distill from.

    router = Router("auto", fallback_url=..., learn="~/.edge-sdk/teacher")   # or: edge-sdk serve --learn DIR
    for record in read_log("~/.edge-sdk/teacher"): ...

A record: {"v": 1, "time", "kind", "messages" | "prompt", "answer", "finish", "reason", "confidence",
"redacted", "model"}, and "tool_calls" when the teacher answered by calling the app's tools (OpenAI's shape,
arguments redacted as the answer is). What it holds is what a training set may keep: the request and the teacher's answer
with every item of personal data the gate finds replaced by placeholders ([EMAIL_1] ...), also when the
caller let it go to the fallback as it was (consent to send is not consent to store), and in the answer too
(a teacher may repeat what it was told). "redacted": items replaced; "confidence": the device answer's, when
the device answered first (auto's low_confidence).

Bounded: files of at most `max_bytes` (teacher-00000001.jsonl, -2, ...), the oldest deleted past `keep`.
Crash-safe: a record is one write() of one line on an O_APPEND descriptor, under an exclusive lock; a
writer killed during that write can leave a torn last line, which readers skip and the next writer cuts off
before it appends, so a torn line never glues onto the next record.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .pii import scan
from .redact import Redactor

try:  # POSIX (Linux, Android, macOS, iOS): writers in other processes wait for each other
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writing process per directory
    fcntl = None

log = logging.getLogger("edge_sdk.hybrid")
VERSION = 1
_NAME = re.compile(r"teacher-(\d{8})\.jsonl")


class TeacherLog:
    """Appends the fallback's answers to JSONL files in `directory` (created if missing)."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = 16 << 20, keep: int = 8):
        """max_bytes: size of one file (a record bigger than that is not logged); keep: files kept, so the
        log never holds more than max_bytes * keep bytes."""
        if max_bytes < 1024 or keep < 1:
            raise ValueError(f"a teacher log needs max_bytes >= 1024 and keep >= 1, got {max_bytes}, {keep}")
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.keep = int(max_bytes), int(keep)
        self._lock = threading.Lock()

    def record(self, request, answer: str, finish: str, route, model: str | None = None,
               tool_calls: tuple[dict, ...] = ()) -> dict[str, Any] | None:
        """Log one exchange the fallback answered (`request`: the RouteRequest as the caller made it; `answer`
        and `tool_calls`: the teacher's, with the data they stand for restored); returns the record written,
        None if it was not (too big, or the disk failed: the caller's answer never depends on the log)."""
        entry = redacted_record(request, answer, finish, route, model, tool_calls)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        if len(line) > self.max_bytes:
            log.warning("teacher log: a %d-byte record exceeds max_bytes %d; not logged", len(line), self.max_bytes)
            return None
        try:
            with self._lock:
                self._append(line)
        except OSError as e:
            log.warning("teacher log %s: %s; not logged", self.directory, e)
            return None
        return entry

    def files(self) -> list[Path]:
        return log_files(self.directory)

    def _append(self, line: bytes) -> None:
        lock = os.open(self.directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            files = self.files()
            path = files[-1] if files else self.directory / _file_name(1)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = _cut_torn_tail(fd)
                if size and size + len(line) > self.max_bytes:  # rotate: a new file, the oldest ones go
                    os.close(fd)
                    fd = -1
                    path = self.directory / _file_name(_number(path) + 1)
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
                    for old in [*files, path][:-self.keep]:
                        old.unlink(missing_ok=True)
                view = memoryview(line)
                while view:  # one write() in practice; a short one is finished, never left torn
                    view = view[os.write(fd, view):]
            finally:
                if fd >= 0:
                    os.close(fd)
        finally:
            os.close(lock)  # releases the flock


def redacted_record(request, answer: str, finish: str, route, model: str | None = None,
                    tool_calls: tuple[dict, ...] = ()) -> dict[str, Any]:
    """The record of one exchange, with the personal data the gate finds in the request, the answer and the
    tool calls' arguments replaced by placeholders (one Redactor: the same address is the same placeholder
    everywhere)."""
    redactor = Redactor()
    findings = scan(request.texts())
    body = request.body(model, redactor.redact_all(findings))
    said = redactor.redact(answer)
    entry: dict[str, Any] = {"v": VERSION, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "kind": request.kind}
    entry["messages" if request.kind == "chat" else "prompt"] = body["messages" if request.kind == "chat" else "prompt"]
    entry.update(answer=said, finish=finish, reason=route.reason, confidence=route.confidence,
                 redacted=None, model=body["model"])
    if tool_calls:  # the arguments are JSON text; a placeholder ([EMAIL_1]) inside one of its strings keeps it JSON
        entry["tool_calls"] = [{**call, "function": {**call["function"],
                                                     "arguments": redactor.redact(call["function"]["arguments"])}}
                               for call in tool_calls]
    entry["redacted"] = len(redactor.placeholders) or None
    return entry


def read_log(directory: str | os.PathLike, stats: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """The records of a teacher log, oldest first. A line that is torn (a writer died during its write) or
    not a record is skipped and counted in `stats["skipped"]`, never raised: the log is read as it is."""
    for path in log_files(Path(directory).expanduser()):
        with open(path, "rb") as f:
            for raw in f:
                try:
                    if not raw.endswith(b"\n"):
                        raise ValueError("torn")
                    entry = json.loads(raw)
                    if not isinstance(entry, dict) or entry.get("v") != VERSION:
                        raise ValueError("not a record")
                except ValueError:
                    if stats is not None:
                        stats["skipped"] = stats.get("skipped", 0) + 1
                    continue
                yield entry


def log_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.fullmatch(p.name)), key=_number)


def _file_name(n: int) -> str:
    return f"teacher-{n:08d}.jsonl"


def _number(path: Path) -> int:
    return int(_NAME.fullmatch(path.name).group(1))


def _cut_torn_tail(fd: int) -> int:
    """Cut a torn last line (a writer killed mid-write) back to the last newline; the file's size after."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    keep, pos = 0, size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        pos = start
    log.warning("teacher log: cut a torn last line (%d bytes) left by an interrupted write", size - keep)
    os.ftruncate(fd, keep)
    return keep
