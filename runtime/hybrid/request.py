"""A request as the router sees it, whichever driver it came from (the server, `Router.generate`, the chat
app): the facts the decision reads, every text the privacy gate reads, and the body the fallback receives.

The gate and the body walk the same structure in the same order, so whatever a request carries to the
fallback - every message of every role, content parts, tool-call arguments (JSON inside a string), stop
strings - is read by the gate and rewritten by redaction; a new field joins both by being walked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

# Request settings forwarded to the fallback as they are (OpenAI's names), and only these: a new field is
# forwarded by naming it here. The scanned ones can carry someone's data (stop strings; tool descriptions,
# schemas' enums and descriptions), so the gate reads them and redaction rewrites them like messages.
FORWARDED = ("max_tokens", "temperature", "top_p", "seed", "stop", "response_format", "tools", "tool_choice",
             "parallel_tool_calls")
SCANNED = ("stop", "response_format", "tools", "tool_choice")
_NOT_TEXT = ("role", "type", "id", "tool_call_id")  # keys whose values are protocol, not anybody's data
FINISH = ("stop", "length", "tool_calls", "content_filter", "function_call")


@dataclass(frozen=True)
class RouteRequest:
    kind: str  # "chat" or "completion"
    messages: list[dict[str, Any]] | None = None  # chat
    prompt: str | None = None  # completion
    model: str = "model"  # the model name the caller asked for (the router's fallback model overrides it)
    settings: dict[str, Any] = field(default_factory=dict)  # FORWARDED fields; None means not set
    route: str | None = None  # the caller's choice: "device", "cloud" or None
    allow_cloud_pii: bool = False  # the caller lets personal data leave the device (exactly True)
    fits: bool = True  # the device model has room for the prompt and the reply

    def texts(self) -> list[str]:
        """Every string of the request that the fallback would receive and that may hold someone's data."""
        out: list[str] = []
        _walk(self.messages if self.kind == "chat" else self.prompt, out)
        for key in FORWARDED:  # in the order body() rebuilds them
            if key in SCANNED:
                _walk(self.settings.get(key), out)
        return out

    def body(self, model: str | None = None, texts: list[str] | None = None) -> dict[str, Any]:
        """The fallback's request body; `texts` replaces `texts()` one for one (the redacted request)."""
        it = iter(texts if texts is not None else self.texts())
        body: dict[str, Any] = {"model": model or self.model, "stream": False}
        if self.kind == "chat":
            body["messages"] = _rebuild(self.messages, it)
        else:
            body["prompt"] = _rebuild(self.prompt, it)
        for key in FORWARDED:
            value = self.settings.get(key)
            if value is not None:
                body[key] = _rebuild(value, it) if key in SCANNED else value
        return body


def _walk(obj: Any, out: list[str], key: str | None = None) -> None:
    if isinstance(obj, str):
        parsed = _json_arguments(obj) if key == "arguments" else None
        if parsed is not None:
            _walk(parsed, out)
        else:
            out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k not in _NOT_TEXT:
                _walk(v, out, k)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _walk(v, out)


def _rebuild(obj: Any, it: Iterator[str], key: str | None = None) -> Any:
    if isinstance(obj, str):
        parsed = _json_arguments(obj) if key == "arguments" else None
        if parsed is None:
            return next(it)
        rebuilt = _rebuild(parsed, it)
        return obj if rebuilt == parsed else json.dumps(rebuilt, ensure_ascii=False)
    if isinstance(obj, dict):
        return {k: (v if k in _NOT_TEXT else _rebuild(v, it, k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rebuild(v, it) for v in obj]
    return obj


MAX_DEPTH = 64  # nesting of tool-call arguments read as JSON (deeper: read as text)


def _json_arguments(text: str):
    """Tool-call arguments are JSON in a string: read inside it (an escaped "\\u0040" is an "@")."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, (dict, list)):
        return None
    level, depth = [value], 0
    while level:  # walked without recursion: how deep it goes decides whether _walk may recurse
        depth += 1
        if depth > MAX_DEPTH:
            return None
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c) if isinstance(v, (dict, list))]
    return value


@dataclass(frozen=True)
class Reply:
    """The fallback's answer, as far as it is passed on (its other fields are not trusted)."""

    text: str
    finish: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: tuple[dict, ...] = ()  # [{id, type: "function", function: {name, arguments: "<json>"}}]


def parse_reply(kind: str, reply: Any) -> Reply:
    """The answer in an OpenAI-shaped reply; ValueError if it has none."""
    try:
        choice = reply["choices"][0]
        text = choice["message"]["content"] if kind == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"the reply has no answer: {str(reply)[:200]}") from None
    if text is not None and not isinstance(text, str):
        raise ValueError(f"the reply's answer is not text: {str(text)[:200]}")
    calls = _tool_calls(choice["message"].get("tool_calls")) if kind == "chat" else ()
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    counts = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")
              if isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool) and usage[k] >= 0}
    return Reply(text or "", finish if finish in FINISH else "stop", counts, calls)


def _tool_calls(calls: Any) -> tuple[dict, ...]:
    """The reply's tool calls in OpenAI's shape, rebuilt from the fields that matter (nothing else is passed on);
    ValueError for a malformed list."""
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise ValueError(f"the reply's tool_calls is not a list: {str(calls)[:200]}")
    out = []
    for c in calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if (not isinstance(fn, dict) or not isinstance(c.get("id"), str) or not isinstance(fn.get("name"), str)
                or not isinstance(fn.get("arguments"), str)):
            raise ValueError(f"the reply has a malformed tool call: {str(c)[:200]}")
        out.append({"id": c["id"], "type": "function", "function": {"name": fn["name"], "arguments": fn["arguments"]}})
    return tuple(out)
