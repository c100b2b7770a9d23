"""The OpenAI HTTP API's shapes: validated requests in, chat/text completions and errors out.

Only what a device model can honour is accepted: `n` must be 1, and options that would silently do
nothing here (audio, logit_bias, the legacy `functions`) are refused with a 400 naming them. Structured output
and tool calling (response_format, tools, tool-call turns) are checked in structured.py. Options that do
not change the text and that clients send by default (user, store, metadata ...) are ignored.

Every value is checked for what the code behind it needs: numbers are finite and in range (Python's json
reads NaN and Infinity), flags are JSON booleans (not "false"), strings are Unicode text (no lone UTF-16
surrogate, which nothing downstream can encode), and `stop` strings are short.
"""
from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """An error answered in OpenAI's JSON: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",  # noqa: A002
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# For an error answered before the request body was read: close the connection after it. Else uvicorn keeps the
# connection for the next request and reads (and discards) the rest of the body first: a client could stream an
# endless body into a refused request and keep the server parsing it.
CLOSE = {"Connection": "close"}


class ClientGone(ApiError):
    """The client hung up (mid-body, or while its request waited for a model): nobody reads the answer."""

    def __init__(self):
        super().__init__(499, "the client closed the request", code="client_closed_request")  # nginx's 499


REFUSED = {  # accepted by OpenAI, meaningless or impossible here: say so instead of ignoring
    "functions": "the legacy 'functions' field is not supported: send 'tools' (OpenAI's current shape)",
    "function_call": "the legacy 'function_call' field is not supported: send 'tool_choice'",
    "logit_bias": "logit_bias is not supported by this server",
    "best_of": "best_of is not supported by this server",
    "suffix": "suffix is not supported by this server",
    "audio": "audio output is not supported by this server: it serves a text model",
}
MAX_TOP_LOGPROBS = {"chat": 20, "completion": 5}  # OpenAI's limits
MAX_STOP = 4  # OpenAI's limit
MAX_STOP_CHARS = 256  # per stop string: a stop marks the end of an answer ("\n\n", "</answer>"), not a document
MAX_BODY = 8 << 20  # bytes of a request body at most (app.py lowers it when no fallback can take long prompts)
PENALTY = 2.0  # frequency_penalty and presence_penalty lie in [-PENALTY, PENALTY], as OpenAI's


@dataclass
class Request:
    """A validated generation request."""

    kind: str  # "chat" or "completion"
    model: str
    messages: list[dict[str, str]] | None  # chat
    prompt: str | None  # completion
    max_tokens: int | None
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, penalties, seed, stop
    stream: bool = False
    include_usage: bool = False
    route: str | None = None  # edge-sdk extension: "device" or "cloud" asks the router for a target
    allow_cloud_pii: bool = False  # edge-sdk extension: the caller lets personal data leave the device
    logprobs: int | None = None  # log-probabilities wanted, with this many alternatives per token (None: none)
    echo: bool = False  # completions: the prompt comes back before the answer (with its logprobs, if asked)
    prompt_ids: list[int] | None = None  # completions: the prompt sent as token ids
    structured: dict[str, Any] = field(default_factory=dict)  # response_format, tools, ... (structured.py)


def _number(body, key, lo, hi, *, integer=False, default=None, lo_open=False):
    value = body.get(key, default)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    # NaN compares false with everything, so a range check alone would let it through.
    if (not ok or isinstance(value, bool) or not math.isfinite(value) or value > hi
            or (value <= lo if lo_open else value < lo)):
        kind = "an integer" if integer else "a number"
        interval = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise ApiError(400, f"'{key}' must be {kind} in {interval}, got {value!r}", param=key)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")  # after json.loads a pair is one character: what is left is lone


def check_text(body: dict) -> None:
    """Raise a 400 if any string in the request (keys and nested values too) holds a lone UTF-16 surrogate.

    JSON's "\\ud800" escape decodes to one, and no UTF-8 encoder (tokenizer, log, response) accepts it."""
    stack: list[tuple[Any, str, str]] = [(v, k, k) for k, v in body.items()]  # (value, path, top-level key)
    stack += [(k, "a key of the request", k) for k in body]
    while stack:
        value, path, param = stack.pop()
        if isinstance(value, str):
            found = None if value.isascii() else _SURROGATE.search(value)
            if found:
                raise ApiError(400, f"{_printable(path)} holds a lone UTF-16 surrogate ({found.group()!a}), which is "
                                    "not Unicode text; send text as UTF-8 (an escaped pair such as \\ud83d\\ude00 "
                                    "is fine)", param=_printable(param))
        elif isinstance(value, dict):
            stack += [(v, f"{path}.{k}", param) for k, v in value.items()]
            stack += [(k, f"a key in {path}", param) for k in value]
        elif isinstance(value, list):
            stack += [(v, f"{path}[{i}]", param) for i, v in enumerate(value)]


def _printable(text: str) -> str:
    """`text` safe to put in a UTF-8 response (a surrogate inside a key name shows as \\udXXX)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse(body: Any, kind: str) -> Request:
    """Validate the JSON body of /v1/chat/completions (kind "chat") or /v1/completions ("completion")."""
    from . import structured  # it builds on this module's shapes
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    check_text(body)  # first: every error message below may quote the request's strings
    for key, why in REFUSED.items():
        if body.get(key) not in (None, False, 0, [], {}):
            raise ApiError(400, why, param=key, code="unsupported_parameter")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise ApiError(400, f"'modalities' can only be [\"text\"] here (this server serves a text model), got "
                            f"{modalities!r}", param="modalities", code="unsupported_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required (see GET /v1/models)", param="model")
    if body.get("n", 1) != 1:
        raise ApiError(400, "'n' must be 1: one device model answers one choice", param="n")
    messages = prompt = prompt_ids = None
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list of {role, content}", param="messages")
        clean = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, f"messages[{i}] must be an object with 'role' and 'content'", param="messages")
            tool_turn = structured.tool_message(i, m)  # an assistant turn with tool_calls, or a tool result
            if tool_turn is not None:
                clean.append(tool_turn)
                continue
            content = m.get("content")
            if isinstance(content, list):  # the array form: text parts only
                parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
                if len(parts) != len(content) or not all(isinstance(p, str) for p in parts):
                    raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
                content = "".join(parts)
            if not isinstance(content, str):
                raise ApiError(400, f"messages[{i}].content must be a string", param="messages")
            clean.append({"role": m["role"], "content": content})
        messages = clean
    else:
        prompt, prompt_ids = _prompt(body.get("prompt"))
    logprobs, echo = _logprobs(body, kind)
    max_key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    # max_tokens 0 with echo scores a prompt without answering it (what evaluation harnesses ask)
    max_tokens = _number(body, max_key, 0 if echo else 1, 1 << 20, integer=True)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop  # one string is one stop, not its characters
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOP:
            raise ApiError(400, f"'stop' must be a non-empty string or a list of up to {MAX_STOP}", param="stop")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise ApiError(400, f"each 'stop' string may have at most {MAX_STOP_CHARS} characters, got one of "
                                f"{max(len(s) for s in stops)}", param="stop")
        stop = stops
    # Omitted sampling fields take the bundle's defaults (greedy for the bundles edge-sdk exports), not
    # OpenAI's temperature 1: a device model's defaults are chosen for it.
    sampling = {"temperature": _number(body, "temperature", 0, 2),
                "top_p": _number(body, "top_p", 0, 1, lo_open=True),
                "frequency_penalty": _number(body, "frequency_penalty", -PENALTY, PENALTY),
                "presence_penalty": _number(body, "presence_penalty", -PENALTY, PENALTY),
                "seed": _number(body, "seed", 0, 2**63 - 1, integer=True), "stop": stop}
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), (bool, type(None))):
        raise ApiError(400, "'stream_options' must be an object whose 'include_usage' is true or false",
                       param="stream_options")
    route = body.get("route")
    if route not in (None, "device", "cloud"):
        raise ApiError(400, "'route' must be \"device\" or \"cloud\"", param="route")
    allow_pii = body.get("allow_cloud_pii", False)
    if not isinstance(allow_pii, bool):  # "false" is a non-empty string: it must not count as consent
        raise ApiError(400, f"'allow_cloud_pii' must be true or false (a JSON boolean), got {allow_pii!r}",
                       param="allow_cloud_pii")
    return Request(kind, model, messages, prompt, max_tokens, sampling, stream, options.get("include_usage") is True,
                   route, allow_pii, logprobs, echo, prompt_ids, structured.fields(body))


def _prompt(prompt) -> tuple[str | None, list[int] | None]:
    """A completion's prompt: a string, or token ids (OpenAI's other form; evaluation harnesses send the ids of the
    server's own tokenizer, from /tokenize). One prompt per request: a list of several is a batch, refused."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str) and prompt:
        return prompt, None
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                    for t in prompt):
        return None, list(prompt)
    raise ApiError(400, "'prompt' must be a non-empty string or a list of token ids (one prompt per request)",
                   param="prompt")


def _logprobs(body: dict, kind: str) -> tuple[int | None, bool]:
    """(alternatives per token or None, echo): chat's logprobs/top_logprobs, completions' logprobs/echo."""
    most = MAX_TOP_LOGPROBS[kind]
    if kind == "chat":
        if body.get("echo") not in (None, False):
            raise ApiError(400, "'echo' is a /v1/completions option", param="echo", code="unsupported_parameter")
        wanted = body.get("logprobs")
        if wanted is not None and not isinstance(wanted, bool):
            raise ApiError(400, f"'logprobs' must be true or false, got {wanted!r}", param="logprobs")
        top = _number(body, "top_logprobs", 0, most, integer=True)
        if top is not None and not wanted:
            raise ApiError(400, "'top_logprobs' needs 'logprobs': true", param="top_logprobs")
        return (top or 0) if wanted else None, False
    echo = body.get("echo", False)
    if echo is None:
        echo = False
    if not isinstance(echo, bool):
        raise ApiError(400, f"'echo' must be true or false, got {echo!r}", param="echo")
    return _number(body, "logprobs", 0, most, integer=True), echo


FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length", "cancelled": "stop"}


def new_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]


def completion(req: Request, rid: str, text: str, finish: str, usage: dict[str, int], route: dict,
               logprobs: dict | None = None) -> dict:
    base = {"id": rid, "created": int(time.time()), "model": req.model, "usage": usage, "route": route}
    if req.kind == "chat":
        return {**base, "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
             "logprobs": logprobs}]}
    return {**base, "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs}]}


def chunk(req: Request, rid: str, *, text: str | None = None, role: bool = False, finish: str | None = None,
          usage: dict | None = None, route: dict | None = None, logprobs: dict | None = None) -> dict:
    base = {"id": rid, "created": int(time.time()), "model": req.model}
    if route is not None:
        base["route"] = route
    if usage is not None:  # the final usage chunk has no choices (stream_options.include_usage)
        return {**base, "object": "chat.completion.chunk" if req.kind == "chat" else "text_completion",
                "choices": [], "usage": usage}
    if req.kind == "chat":
        delta = {"role": "assistant"} if role else ({"content": text} if text is not None else {})
        return {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]}
    return {**base, "object": "text_completion",
            "choices": [{"index": 0, "text": text or "", "finish_reason": finish, "logprobs": logprobs}]}
