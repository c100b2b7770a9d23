"""Structured output and tool calling over HTTP: OpenAI's `response_format`, `tools`, `tool_choice` and
`parallel_tool_calls` on /v1/chat/completions, and the tool-call turns of a conversation history.

The Python API does the work (runtime/structured: `generation.prepare` checks the fields, `generation.encode`
renders the prompt in the model's tool format, `ReplyParser` reads the reply back); this module is the wire:

    request   fields(body), tool_message(i, m)       checked shapes, in protocol.parse
    plan      plan(server, req) -> Plan | None        Spec, prompt ids and the compiled grammar (on the server's
                                                      prep thread), before the request takes a model: a field,
                                                      schema or history the engine refuses is a 400
    reply     respond(...) / collect(...) / answer(...)
              message.tool_calls [{id, type: "function", function: {name, arguments: "<json>"}}], content null,
              finish_reason "tool_calls"; streamed as OpenAI streams them (a call's first delta has its index,
              id, type and name with empty arguments, the next ones fragments of the arguments' JSON text).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from jinja2.exceptions import TemplateError

from edge_sdk.errors import ContextLengthError, StructuredOutputError

from . import protocol
from .pool import Job
from .protocol import ApiError

FIELDS = ("response_format", "tools", "tool_choice", "parallel_tool_calls")


def fields(body: dict) -> dict[str, Any]:
    """The structured-output fields of a request body (those set). Their content is checked by `plan`, against
    the model (its tool format decides what a call looks like)."""
    return {k: body[k] for k in FIELDS if body.get(k) is not None}


def tool_message(i: int, m: dict) -> dict | None:
    """A history message that belongs to tool calling, kept whole for the renderer: an assistant turn with
    `tool_calls` (content may be null) or a `tool` result (`tool_call_id`). None for any other message."""
    role = m.get("role")
    if not (role == "tool" or (role == "assistant" and m.get("tool_calls") is not None)):
        return None
    content = m.get("content")
    if isinstance(content, list):  # the array form: text parts only, as for other messages
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) != len(content) or not all(isinstance(p, str) for p in parts):
            raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
        content = "".join(parts)
    if role == "tool":
        if not isinstance(content, str):  # (a check on the string form: the renderer needs text)
            raise ApiError(400, f"messages[{i}].content (a tool result) must be a string: JSON-encode structured "
                           "results", param="messages")
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ApiError(400, f"messages[{i}]: a tool message needs the 'tool_call_id' of the call it answers",
                           param="messages")
        out = {"role": "tool", "tool_call_id": call_id, "content": content}
        if isinstance(m.get("name"), str):
            out["name"] = m["name"]
        return out
    if content is not None and not isinstance(content, str):
        raise ApiError(400, f"messages[{i}].content must be a string or null", param="messages")
    calls = m["tool_calls"]
    if not isinstance(calls, list) or not calls:
        raise ApiError(400, f"messages[{i}].tool_calls must be a non-empty list", param="messages")
    clean = []
    for j, c in enumerate(calls):
        fn = c.get("function") if isinstance(c, dict) else None
        if (not isinstance(fn, dict) or c.get("type", "function") != "function" or not isinstance(c.get("id"), str)
                or not isinstance(fn.get("name"), str) or not isinstance(fn.get("arguments"), str)):
            raise ApiError(400, f"messages[{i}].tool_calls[{j}] must be {{'id', 'type': 'function', 'function': "
                           "{'name', 'arguments': '<JSON text>'}}", param="messages")
        clean.append({"id": c["id"], "type": "function",
                      "function": {"name": fn["name"], "arguments": fn["arguments"]}})
    # content "" for null: the same to the renderer, and text to everything that measures a message's content
    return {"role": "assistant", "content": content or "", "tool_calls": clean}


@dataclass
class Plan:
    """A structured request made ready: what the parser needs (`spec`, None for free text), the prompt ids, and
    the grammar, compiled once at planning (a refusal is a 400) and again for any later generation."""

    spec: Any
    ids: list[int]
    _model: Any = None
    _constraint: Any = None
    used: bool = field(default=False)

    def constraint(self):
        from edge_sdk.runtime.structured.generation import constraint_for

        if self.used or self._constraint is None:
            return constraint_for(self._model, self.spec)
        self.used = True
        return self._constraint


def needed(req: protocol.Request) -> bool:
    """Whether a request goes through the structured path: it has a field, or its history has tool turns."""
    from edge_sdk.runtime.structured.render import has_tool_turns

    return bool(req.structured) or has_tool_turns(req.messages)


def plan(server, req: protocol.Request) -> Plan | None:
    """Check the fields against the server's model, render the prompt and compile the grammar (CPU work: the
    server calls this on its prep thread; the first structured request builds the engine's tokenizer, ~1 s).
    None for a plain request."""
    if not needed(req):
        return None
    if req.logprobs is not None:  # the structured path does not report them yet: say so rather than drop them
        raise ApiError(400, "'logprobs' cannot be combined with response_format, tools or tool-call history yet",
                       param="logprobs", code="unsupported_parameter")
    model = server.pool.model
    if req.kind == "chat" and model.template is None:
        raise ApiError(400, "this model has no chat template (a base model): tools and tool-call history need one",
                       param="messages", code="no_chat_template")
    if not server._may_escalate(req):  # too large to fit: refused before tokenizing it (app.py's check)
        server._check_size(model, req, "messages" if req.kind == "chat" else "prompt")
    return _plan(model, req)


def _plan(model, req: protocol.Request) -> Plan:
    from edge_sdk.runtime.structured import generation

    field_param = _param(req.structured)
    text_param = "messages" if req.kind == "chat" else "prompt"
    with _refusals(field_param):
        spec = generation.prepare(model, req.structured)
    with _refusals(text_param):  # the history (tool turns) and the tools as the template renders them
        ids = generation.encode(model, req.messages if req.kind == "chat" else req.prompt, spec,
                                raw=req.kind != "chat")
    with _refusals(field_param):  # the grammar compile: a schema the engine cannot enforce
        constraint = generation.constraint_for(model, spec)
    return Plan(spec, ids, model, constraint)


@contextlib.contextmanager
def _refusals(param: str | None):
    """The runtime's refusals (ValueError naming the problem) as OpenAI's 400."""
    try:
        yield
    except StructuredOutputError as e:  # the engine is not installed (or cannot read this tokenizer)
        raise ApiError(400, str(e), param=param, code="structured_output_unavailable") from None
    except (ValueError, TypeError, RecursionError, TemplateError) as e:  # TemplateError: the template's raise
        raise ApiError(400, str(e) or type(e).__name__, param=param) from None


def _param(structured: dict) -> str | None:
    """The field a refusal most likely concerns (messages errors name their message in the text)."""
    for key in ("response_format", "tools", "tool_choice", "parallel_tool_calls"):
        if key in structured:
            return key
    return None


def settings(server, req, plan: Plan) -> dict[str, Any]:
    # No repetition penalty unless asked: Model.stream_ids decides that for every grammar-constrained generation
    # (API and server alike), so it is not repeated here.
    return server.settings(req, plan.ids)


async def events(server, req, plan: Plan, job: Job, holder: list, observer=None) -> AsyncIterator:
    """The reply's events (str text pieces, ToolCallDelta) from a pool model; `holder` receives the ReplyStream
    (its `.reply` is the whole Reply once the events have ended)."""
    from edge_sdk.runtime.generate import GenerationStats
    from edge_sdk.runtime.structured.generation import ReplyStream

    constraint = plan.constraint()  # before taking a model: nothing to hand back if it fails
    model = await server.pool.acquire(job)
    s = settings(server, req, plan)

    def start():
        stats = GenerationStats()
        stream = ReplyStream(model.stream_ids(plan.ids, stats, constraint=constraint, confidence=observer, **s),
                             plan.spec, stats)
        holder.append(stream)
        return stream

    async for event in server.pool.stream(model, start, job):
        yield event


def _error(e: BaseException) -> ApiError:
    if isinstance(e, ContextLengthError):
        return ApiError(400, str(e), code="context_length_exceeded")
    return ApiError(500, f"the structured generation stopped: {e}", type="server_error",
                    code="structured_output_error")


async def collect(server, request, req, plan: Plan, job: Job, observer=None):
    """The whole Reply of a device generation (a client that hangs up stops it)."""
    holder: list = []

    async def run():
        async for _ in events(server, req, plan, job, holder, observer):
            pass

    try:  # a client that hangs up stops its generation (or leaves the queue)
        await server._unless_gone(request, job, run())
    except (ContextLengthError, StructuredOutputError) as e:
        raise _error(e) from None
    return holder[0].reply


def message(req, text: str, tool_calls: list[dict]) -> dict:
    """The assistant message: with calls, OpenAI's shape has content null (unless the model also wrote text)."""
    msg: dict[str, Any] = {"role": "assistant", "content": text if (text or not tool_calls) else None}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return msg


async def respond(server, request, req, plan: Plan, route: dict[str, Any]):
    """The device's answer to a structured request: JSON, or server-sent events with tool-call deltas."""
    from .app import route_header

    job = Job()
    if not req.stream:
        reply = await collect(server, request, req, plan, job)
        calls = [c.to_openai() for c in reply.tool_calls]
        return answer(server, req, str(reply), calls, reply.finish_reason, server._usage(plan.ids, job), route)
    holder: list = []
    it = events(server, req, plan, job, holder).__aiter__()

    async def first_event():
        try:
            return await it.__anext__()
        except StopAsyncIteration:
            return None

    try:  # a full queue or a prompt that does not fit is an HTTP error now, not an error inside a 200 stream
        first = await server._unless_gone(request, job, first_event())
    except (ContextLengthError, StructuredOutputError) as e:
        raise _error(e) from None

    async def chunks():
        if first is not None:
            yield first
        async for event in it:
            yield event

    def finish():
        return holder[0].reply.finish_reason if holder and holder[0].reply is not None else "stop"

    return _sse(req, chunks(), route, lambda: server._usage(plan.ids, job), job, finish, route_header(route))


def delta(event) -> dict:
    """One event as the `delta` of a chat.completion.chunk."""
    if isinstance(event, str):
        return {"content": event}
    call: dict[str, Any] = {"index": event.index}
    if event.id is not None:  # a call's first delta: id, type and name, empty arguments
        call.update(id=event.id, type="function", function={"name": event.name, "arguments": event.arguments})
    else:
        call["function"] = {"arguments": event.arguments}
    return {"tool_calls": [call]}


def _sse(req, events: AsyncIterator, route: dict, usage, job: Job | None, finish, header: str):
    from starlette.responses import StreamingResponse

    rid = protocol.new_id(req.kind)

    def event(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    def piece(d: dict) -> dict:
        body = protocol.chunk(req, rid, route=route)
        if req.kind == "chat":
            body["choices"][0]["delta"] = d
        else:
            body["choices"][0]["text"] = d.get("content", "")
        return body

    async def stream():
        try:
            if req.kind == "chat":
                yield event(protocol.chunk(req, rid, role=True, route=route))
            async for e in events:
                if e:  # an empty text piece says nothing
                    yield event(piece(delta(e)))
            yield event(protocol.chunk(req, rid, finish=finish(), route=route))
            if req.include_usage:
                yield event(protocol.chunk(req, rid, usage=usage(), route=route))
            yield "data: [DONE]\n\n"
        except ApiError as e:  # after the 200 started: report in the stream, as OpenAI does
            yield f"data: {json.dumps(e.body())}\n\n"
        except (ContextLengthError, StructuredOutputError) as e:
            yield f"data: {json.dumps(_error(e).body())}\n\n"
        finally:
            if job is not None:
                job.stop.set()  # the client left mid-stream: stop generating

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"X-Edge-Route": header, "Cache-Control": "no-cache"})


def answer(server, req, text: str, tool_calls: list[dict], finish: str, usage: dict, route: dict, job=None):
    """A whole answer (the device's, a judged one, or the fallback's) with its tool calls, as JSON or as a
    stream of the same events (text, then each call's first delta and its arguments)."""
    from starlette.responses import JSONResponse

    from .app import route_header

    if req.stream:
        async def once():
            if text:
                yield text
            for i, c in enumerate(tool_calls):
                yield _Delta(i, c["id"], c["function"]["name"], "")
                if c["function"]["arguments"]:
                    yield _Delta(i, None, None, c["function"]["arguments"])

        return _sse(req, once(), route, lambda: usage, job, lambda: finish, route_header(route))
    body = protocol.completion(req, protocol.new_id(req.kind), text, finish, usage, route)
    if req.kind == "chat":
        body["choices"][0]["message"] = message(req, text, tool_calls)
    return JSONResponse(body, headers={"X-Edge-Route": route_header(route)})


@dataclass(frozen=True)
class _Delta:  # the shape of runtime.structured.ToolCallDelta, for answers that arrive whole
    index: int
    id: str | None
    name: str | None
    arguments: str
