"""Device first, a bigger model when needed and allowed: the router and its two Python drivers.

The decision itself is `decision.decide`, a pure function; the router holds the policy, the privacy gate
(pii.py) and the fallback (client.py, bounded by calls.py), and drives the decision for Python callers:
`generate` (blocking, any messages) and `stream_chat` (a chat session whose reply streams: the chat app).
The server drives the same decision on its event loop (runtime/server/app.py) with `inspect`, `decide`
and `fallback_async`. A fallback that is unreachable, slow or full never hangs a request: the device
answer is used, marked degraded. Every answer carries its route: {"target", "reason", "confidence",
"degraded", "redacted"}.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Iterator

from .calls import Calls, FallbackBusy
from .client import FallbackClient, FallbackError
from .confidence import Confidence
from .decision import DEFAULT_THRESHOLD, POLICIES, Policy, Route, decide
from .pii import Findings, scan
from .redact import Redactor
from .request import Reply, RouteRequest, parse_reply
from .teacher_log import TeacherLog

log = logging.getLogger("edge_sdk.hybrid")
_NOTHING = Findings((), ())
_MARGIN = 5.0  # seconds past the fallback's deadline before a waiting caller gives up on its thread


@dataclass
class Answer:
    text: str
    route: dict[str, Any]
    finish: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: tuple[dict, ...] = ()  # the fallback's calls of the app's tools (OpenAI's shape), if it made any


@dataclass(frozen=True)
class Event:
    """What a routed chat turn (Router.stream_chat) reports, in order:
    "text": a piece of the device's reply, as it is decoded;
    "asking": the fallback is being asked (`text` says why: low_confidence, cloud-first, context);
    "replace": the fallback's whole answer, which replaces whatever "text" pieces came before;
    "route": last, the turn's route (as Answer.route)."""

    kind: str
    text: str = ""
    route: dict[str, Any] | None = None


class Router:
    def __init__(self, policy: str = "local-only", fallback_url: str | None = None, fallback_model: str | None = None,
                 fallback_key: str | None = None, redact: bool = False, timeout: float = 30.0,
                 threshold: float | None = None, retries: int = 2, concurrency: int = 4, queue: int = 8,
                 learn: str | os.PathLike | TeacherLog | None = None):
        """timeout: seconds for a whole fallback call (retries included); concurrency: fallback calls at once;
        queue: calls that may wait for one (more are not made: the device answers, marked degraded);
        learn: a directory (or a TeacherLog) where every answer of the fallback is logged, redacted, to
        distill from (teacher_log.py; off by default)."""
        self.policy = Policy(policy, DEFAULT_THRESHOLD if threshold is None else float(threshold), bool(redact))
        if policy != "local-only" and not fallback_url:
            raise ValueError(f"policy {policy!r} needs a fallback URL")
        self.client = FallbackClient(fallback_url, model=fallback_model, api_key=fallback_key, timeout=timeout,
                                     retries=retries) if fallback_url else None
        self.calls = Calls(concurrency, queue)
        if learn is not None and not fallback_url:
            raise ValueError("learn= logs the fallback's answers: it needs a fallback URL")
        self.teacher_log = learn if isinstance(learn, TeacherLog) or learn is None else TeacherLog(learn)

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    # -- the decision and the gate (the server drives these itself) ---------------------------------------
    def inspect(self, request: RouteRequest) -> Findings:
        """The privacy gate over everything the request would send (CPU work: the server runs it on a thread).
        Nothing is read when nothing can leave the device."""
        if self.policy.name == "local-only" or request.route == "device":
            return _NOTHING
        return scan(request.texts())

    def decide(self, request: RouteRequest, findings: Findings, device: float | None = None,
               cloud: str | None = None) -> Route:
        return decide(self.policy, request, findings.count, device, cloud)

    def stats(self) -> dict[str, Any]:
        """For /health: the policy and the fallback calls running, waiting, served, failed, refused."""
        return {"policy": self.policy.name, **self.calls.stats()}

    def close(self) -> None:
        self.calls.close()

    # -- the fallback ---------------------------------------------------------------------------------------
    def _ask(self, request: RouteRequest, findings: Findings, redactor: Redactor | None,
             deadline: float | None = None, route: Route | None = None) -> Reply:
        texts = redactor.redact_all(findings) if redactor is not None else None
        body = request.body(self.client.model, texts)
        reply = self.client.complete("chat/completions" if request.kind == "chat" else "completions", body, deadline)
        try:
            got = parse_reply(request.kind, reply)
        except ValueError as e:
            raise FallbackError(f"the fallback at {self.client.base_url}: {e}") from None
        if redactor is not None:
            got = replace(got, text=redactor.restore(got.text),
                          tool_calls=tuple(_restored_call(c, redactor) for c in got.tool_calls))
        if self.teacher_log is not None and route is not None:  # the answer arrived: a lesson for the device
            self.teacher_log.record(request, got.text, got.finish, route, self.client.model, got.tool_calls)
        return got

    def _submit(self, request: RouteRequest, findings: Findings, route: Route):
        redactor = Redactor() if route.redacted is not None else None
        return self.calls.submit(partial(self._ask, request, findings, redactor, route=route), self.client.timeout)

    def fallback(self, request: RouteRequest, findings: Findings, route: Route) -> tuple[Reply | None, str]:
        """Ask the fallback as `route` says (redacted or not); blocking. (reply, "ok"), or (None, "failed" |
        "busy"): why it failed goes to the log, never to the caller."""
        try:
            return self._submit(request, findings, route).result(self.client.timeout + _MARGIN), "ok"
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the device answers
            return None, _failure(e)

    async def fallback_async(self, request: RouteRequest, findings: Findings, route: Route) -> tuple[Reply | None, str]:
        """`fallback` for an event loop: the call runs on the router's own threads."""
        try:
            future = asyncio.wrap_future(self._submit(request, findings, route))
            return await asyncio.wait_for(future, self.client.timeout + _MARGIN), "ok"
        except Exception as e:  # noqa: BLE001 - (asyncio.CancelledError is not an Exception: it propagates)
            return None, _failure(e)

    def ask(self, kind: str, messages: list[dict] | None, prompt: str | None, settings: dict[str, Any],
            model: str, redactor: Redactor | None) -> Answer:
        """The fallback's answer to one request, not routed (blocking; FallbackError if it cannot give one)."""
        request = RouteRequest(kind, messages, prompt, model, dict(settings))
        got = self._ask(request, scan(request.texts()) if redactor is not None else _NOTHING, redactor)
        return Answer(got.text, {}, got.finish, got.usage, got.tool_calls)

    # -- driver: the Python API (apps without HTTP; RAG's ask) ------------------------------------------------
    def generate(self, model, messages: list[dict[str, str]], *, allow_cloud_pii: bool = False, **settings) -> Answer:
        """Answer `messages` with `model` or the fallback, by the policy. Blocking; never raises for a fallback
        failure (the device answers, marked degraded)."""
        _check_consent(allow_cloud_pii)
        ids = model.encode_prompt(messages)
        request = RouteRequest("chat", list(messages), None, model.manifest.get("name", "model"),
                               _cloud_settings(settings), allow_cloud_pii=allow_cloud_pii,
                               fits=len(ids) < model.max_context)
        findings = self.inspect(request)
        score = outcome = text = reply = None
        route = self.decide(request, findings)
        while route.next:
            if route.next == "cloud":
                reply, outcome = self.fallback(request, findings, route)
            else:
                confidence = Confidence()
                text = "".join(model.stream_ids(ids, confidence=confidence, **settings))
                score = round(confidence.score, 4)
            route = self.decide(request, findings, score, outcome)
        if route.target == "refuse":
            _refuse(route, f"the conversation ({len(ids)} tokens)")
        if route.target == "cloud":
            return Answer(reply.text, route.public(), reply.finish, reply.usage, reply.tool_calls)
        return Answer(text, route.public(confidence=score))

    # -- driver: a chat session (the chat app: the device's reply streams, the fallback's replaces it) ------
    def stream_chat(self, chat, user_text: str, *, allow_cloud_pii: bool = False, **settings) -> Iterator[Event]:
        """One turn of `chat` (a ChatSession) by the policy, as Events. The session's history ends with
        whichever answer the caller was given; closing the generator early (the user pressed Stop)
        leaves what was shown so far: the device's partial reply, or an empty one while the fallback
        was being asked. A fallback failure never raises: the device answers, marked degraded."""
        _check_consent(allow_cloud_pii)
        messages = [*chat.messages, {"role": "user", "content": user_text}]
        # Whether it fits costs an encoding of the conversation: local-only never needs to know.
        fits = self.policy.name == "local-only" or chat.fits(user_text)
        request = RouteRequest("chat", messages, None, chat.model.manifest.get("name", "model"),
                               _cloud_settings(settings), allow_cloud_pii=allow_cloud_pii, fits=fits)
        findings = self.inspect(request)
        score = outcome = reply = None
        route = self.decide(request, findings)
        while route.next:
            if route.next == "cloud":
                yield Event("asking", route.reason)
                reply, outcome = self.fallback(request, findings, route)
            else:
                confidence = Confidence()
                stream = chat.stream(user_text, confidence=confidence, **settings)
                try:
                    for piece in stream:
                        yield Event("text", piece)
                finally:
                    stream.close()
                score = round(confidence.score, 4)
            route = self.decide(request, findings, score, outcome)
        if route.target == "refuse":
            _refuse(route, "the conversation", "; start a new chat")
        if route.target == "cloud" and score is None:  # the device said nothing: the exchange joins the history
            shown = False
            try:
                yield Event("replace", reply.text)
                shown = True
            finally:  # the question joins the history either way, with the answer the user saw
                chat.add_exchange(user_text, reply.text if shown else "")
        elif route.target == "cloud":
            yield Event("replace", reply.text)
            chat.revise_reply(reply.text)  # after the yield: a turn stopped here keeps the device's reply
        yield Event("route", route=route.public(confidence=score))


def _failure(e: Exception) -> str:
    if isinstance(e, FallbackBusy):
        log.warning("fallback not asked: %s", e)
        return "busy"
    if isinstance(e, (FallbackError, FutureTimeout, asyncio.TimeoutError)):
        log.warning("fallback failed: %s", e or type(e).__name__)
    else:
        log.error("fallback failed unexpectedly", exc_info=e)
    return "failed"


def _refuse(route: Route, what: str, hint: str = "") -> None:
    from edge_sdk.errors import ContextLengthError

    why = {"personal_data": "holds personal data, so it was not sent to the fallback",
           "fallback_failed": "the fallback is busy" if route.error == "server_busy" else
           "the fallback could not answer it"}[route.reason]
    raise ContextLengthError(f"{what} does not fit the model's context and {why}{hint}")


def _check_consent(allow_cloud_pii) -> None:
    if not isinstance(allow_cloud_pii, bool):
        raise TypeError(f"allow_cloud_pii must be True or False, got {allow_cloud_pii!r}")


def _restored_call(call: dict, redactor: Redactor) -> dict:
    """A fallback's tool call with the placeholders in its arguments put back: inside the JSON's strings, so an
    original with a quote or a backslash stays valid JSON (the app executes this call on the device)."""
    text = call["function"]["arguments"]
    try:
        args = json.loads(text)
    except (ValueError, RecursionError):
        return call  # not JSON: nothing the app could execute either way
    try:
        restored = _restore_strings(args, redactor)
    except RecursionError:
        return call
    if restored == args:
        return call
    return {**call, "function": {**call["function"], "arguments": json.dumps(restored, ensure_ascii=False)}}


def _restore_strings(value, redactor: Redactor):
    if isinstance(value, str):
        return redactor.restore(value)
    if isinstance(value, dict):
        return {redactor.restore(k): _restore_strings(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_strings(v, redactor) for v in value]
    return value


def _cloud_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The fallback request's sampling fields from a device call's keyword arguments."""
    return {"max_tokens": settings.get("max_new_tokens"), "temperature": settings.get("temperature"),
            "top_p": settings.get("top_p"), "seed": settings.get("seed"), "stop": settings.get("stop")}
