"""Device first, a bigger model when needed and allowed: the routing policy and the privacy gate.

Policies:
- local-only: nothing ever leaves the device (the default);
- auto: the device answers; the fallback is asked when the prompt does not fit the device model, when
  the device answer's confidence is below the threshold, or when the caller asks ("route": "cloud");
- cloud-first: the fallback answers; the device does when the fallback fails.
Privacy gate (auto and cloud-first): a prompt with personal data (pii.py) is not sent unless the
caller allows it, or `redact` replaces the data with placeholders that are restored in the reply.
A fallback that is unreachable or slow never hangs a request: the device answer is used, marked
degraded. Every answer carries its route: {"target", "reason", "confidence", "degraded", "redacted"}.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Iterator

from .client import FallbackClient, FallbackError
from .confidence import Confidence
from .pii import Redactor, find_pii

POLICIES = ("local-only", "auto", "cloud-first")
# exp(mean log p) below this -> escalate (auto). Calibrated on benchmarks/router_eval.py's capitals set with
# SmolLM2-135M-Instruct int4: see docs/server.md for the table it was chosen from.
DEFAULT_THRESHOLD = 0.65


@dataclass
class Answer:
    text: str
    route: dict[str, Any]
    finish: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)


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
                 threshold: float | None = None, retries: int = 2):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if policy != "local-only" and not fallback_url:
            raise ValueError(f"policy {policy!r} needs a fallback URL")
        self.policy, self.redact = policy, redact
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.client = FallbackClient(fallback_url, model=fallback_model, api_key=fallback_key, timeout=timeout,
                                     retries=retries) if fallback_url else None

    # -- decisions ---------------------------------------------------------------------------------
    def privacy(self, texts: list[str], allowed: bool) -> tuple[bool, Redactor | None, int]:
        """(may send, redactor to use or None, personal data spans found)."""
        found = sum(len(find_pii(t)) for t in texts)
        if not found or allowed:
            return True, None, found
        if self.redact:
            return True, Redactor(), found
        return False, None, found

    def can_escalate(self, req) -> bool:
        return self.client is not None and self.policy != "local-only" and req.route != "device"

    # -- the fallback ------------------------------------------------------------------------------
    def ask(self, kind: str, messages: list[dict] | None, prompt: str | None, settings: dict[str, Any],
            model: str, redactor: Redactor | None) -> Answer:
        """The fallback's answer (blocking; FallbackError if it cannot give one)."""
        body: dict[str, Any] = {"model": self.client.model or model, "stream": False}
        if kind == "chat":
            body["messages"] = [dict(m, content=redactor.redact(m["content"])) if redactor else dict(m)
                                for m in messages]
        else:
            body["prompt"] = redactor.redact(prompt) if redactor else prompt
        for key in ("max_tokens", "temperature", "top_p", "seed", "stop"):
            if settings.get(key) is not None:
                body[key] = settings[key]
        reply = self.client.complete("chat/completions" if kind == "chat" else "completions", body)
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] if kind == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise FallbackError(f"the fallback's reply has no answer: {str(reply)[:200]}") from None
        text = redactor.restore(text or "") if redactor else (text or "")
        return Answer(text, {}, choice.get("finish_reason") or "stop", reply.get("usage") or {})

    # -- the server's path -------------------------------------------------------------------------
    async def answer(self, server, http_request, req, ids, reason: str | None = None):
        texts = [m["content"] for m in req.messages] if req.kind == "chat" else [req.prompt]
        may_send, redactor, pii = self.privacy(texts, req.allow_cloud_pii)
        extra = {"redacted": pii} if redactor else {}

        async def cloud(why: str, **info):
            settings = dict(req.sampling, max_tokens=req.max_tokens)
            got = await asyncio.to_thread(self.ask, req.kind, req.messages, req.prompt, settings, req.model, redactor)
            route = {"target": "cloud", "reason": why, **info, **extra}
            usage = {k: got.usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
            return self._respond(server, req, got.text, got.finish, usage, route)

        if self.policy == "local-only" or req.route == "device":
            why = "local-only" if self.policy == "local-only" else "caller"
            return await server.respond_from_device(http_request, req, ids, {"target": "device", "reason": why})
        if reason == "context":  # the device cannot answer at all
            from ..server.protocol import ApiError

            if not may_send:
                raise ApiError(400, f"the prompt ({len(ids)} tokens) does not fit this model's context and holds "
                                    "personal data, so it was not sent to the fallback", code="context_length_exceeded")
            try:
                return await cloud("context")
            except FallbackError as e:
                raise ApiError(400, f"the prompt ({len(ids)} tokens) does not fit this model's context, and {e}",
                               code="context_length_exceeded") from None
        if req.route == "cloud" or self.policy == "cloud-first":
            why = "caller" if req.route == "cloud" else "cloud-first"
            if not may_send:
                return await server.respond_from_device(http_request, req, ids,
                                                        {"target": "device", "reason": "personal_data"})
            try:
                return await cloud(why)
            except FallbackError:
                return await server.respond_from_device(http_request, req, ids, {
                    "target": "device", "reason": "fallback_failed", "degraded": True})
        # auto: the device answers; a doubtful answer goes to the fallback if it may
        from ..server.pool import Job

        confidence, job = Confidence(), Job()
        text = await server._collect(http_request, server.device_pieces(req, ids, job, observer=confidence), job)
        score = round(confidence.score, 4)
        device_route = {"target": "device", "confidence": score}
        if score >= self.threshold:
            return self._respond(server, req, text, None, server._usage(ids, job), {**device_route, "reason": "confident"},
                                 job)
        if not may_send:
            return self._respond(server, req, text, None, server._usage(ids, job),
                                 {**device_route, "reason": "personal_data"}, job)
        try:
            return await cloud("low_confidence", confidence=score)
        except FallbackError:
            return self._respond(server, req, text, None, server._usage(ids, job),
                                 {**device_route, "reason": "low_confidence", "degraded": True}, job)

    @staticmethod
    def _respond(server, req, text, finish, usage, route, job=None):
        if req.stream:
            async def once():
                yield text

            return server.sse(req, once(), route, lambda: usage, job, finish=finish)
        return server.json(req, text, job, [], route, finish=finish, usage=usage)

    # -- the Python path (apps without HTTP, e.g. the chat app) ------------------------------------
    def generate(self, model, messages: list[dict[str, str]], *, allow_cloud_pii: bool = False, **settings) -> Answer:
        """Answer `messages` with `model` or the fallback, by the policy. Blocking; never raises for a fallback
        failure (the device answers, marked degraded)."""
        ids = model.encode_prompt(messages)

        def device(reason, **info):
            confidence = Confidence()
            text = "".join(model.stream_ids(ids, confidence=confidence, **settings))
            return Answer(text, {"target": "device", "reason": reason, "confidence": round(confidence.score, 4),
                                 **info})

        if self.policy == "local-only":
            return device("local-only")
        may_send, redactor, pii = self.privacy([m["content"] for m in messages], allow_cloud_pii)
        extra = {"redacted": pii} if redactor else {}
        cloud_settings = _cloud_settings(settings)

        def cloud(why, **info):
            got = self.ask("chat", messages, None, cloud_settings, model.manifest.get("name", "model"), redactor)
            got.route = {"target": "cloud", "reason": why, **info, **extra}
            return got

        if len(ids) >= model.max_context:
            if not may_send:
                from edge_sdk.errors import ContextLengthError

                raise ContextLengthError(f"the conversation ({len(ids)} tokens) does not fit the model's context and "
                                         "holds personal data, so it was not sent to the fallback")
            return cloud("context")
        if self.policy == "cloud-first":
            if not may_send:
                return device("personal_data")
            try:
                return cloud("cloud-first")
            except FallbackError:
                return device("fallback_failed", degraded=True)
        answer = device("confident")
        score = answer.route["confidence"]
        if score >= self.threshold:
            return answer
        if not may_send:
            answer.route["reason"] = "personal_data"
            return answer
        try:
            return cloud("low_confidence", confidence=score)
        except FallbackError:
            answer.route.update(reason="low_confidence", degraded=True)
            return answer

    # -- the chat session's path (the chat app: the device's reply streams, the fallback's replaces it) ---
    def stream_chat(self, chat, user_text: str, *, allow_cloud_pii: bool = False, **settings) -> Iterator[Event]:
        """One turn of `chat` (a ChatSession) by the policy, as Events. The session's history ends with
        whichever answer the caller was given; closing the generator early (the user pressed Stop)
        leaves what was shown so far: the device's partial reply, or an empty one while the fallback
        was being asked. A fallback failure never raises: the device answers, marked degraded."""
        if self.policy == "local-only":
            yield from self._device_turn(chat, user_text, settings, {"target": "device", "reason": "local-only"})
            return
        messages = [*chat.messages, {"role": "user", "content": user_text}]
        may_send, redactor, pii = self.privacy([m["content"] for m in messages], allow_cloud_pii)
        extra = {"redacted": pii} if redactor else {}
        cloud_settings = _cloud_settings(settings)
        name = chat.model.manifest.get("name", "model")

        if not chat.fits(user_text):
            if not may_send:
                from edge_sdk.errors import ContextLengthError

                raise ContextLengthError("the conversation does not fit the model's context and holds personal "
                                         "data, so it was not sent to the fallback; start a new chat")
            yield Event("asking", "context")
            try:
                got = self.ask("chat", messages, None, cloud_settings, name, redactor)
            except FallbackError as e:
                from edge_sdk.errors import ContextLengthError

                raise ContextLengthError(f"the conversation does not fit the model's context, and {e}") from None
            yield from self._cloud_turn(chat, user_text, got.text, {"target": "cloud", "reason": "context",
                                                                          **extra})
            return
        if self.policy == "cloud-first" and may_send:
            yield Event("asking", "cloud-first")
            try:
                got = self.ask("chat", messages, None, cloud_settings, name, redactor)
            except FallbackError:
                yield from self._device_turn(chat, user_text, settings, {"target": "device",
                                                                         "reason": "fallback_failed", "degraded": True})
                return
            yield from self._cloud_turn(chat, user_text, got.text, {"target": "cloud", "reason": "cloud-first",
                                                                          **extra})
            return
        if self.policy == "cloud-first":
            yield from self._device_turn(chat, user_text, settings, {"target": "device", "reason": "personal_data"})
            return
        # auto: the device answers; a doubtful answer goes to the fallback if it may.
        confidence = Confidence()
        yield from self._device_pieces(chat, user_text, settings, confidence)
        score = round(confidence.score, 4)
        route = {"target": "device", "reason": "confident", "confidence": score}
        if score < self.threshold and not may_send:
            route["reason"] = "personal_data"
        elif score < self.threshold:
            yield Event("asking", "low_confidence")
            try:
                got = self.ask("chat", messages, None, cloud_settings, name, redactor)
            except FallbackError:
                route.update(reason="low_confidence", degraded=True)
            else:
                yield Event("replace", got.text)
                chat.revise_reply(got.text)  # after the yield: a turn stopped here keeps the device's reply
                yield Event("route", route={"target": "cloud", "reason": "low_confidence", "confidence": score,
                                            **extra})
                return
        yield Event("route", route=route)

    @staticmethod
    def _device_pieces(chat, user_text: str, settings: dict[str, Any], confidence: Confidence) -> Iterator[Event]:
        stream = chat.stream(user_text, confidence=confidence, **settings)
        try:
            for piece in stream:
                yield Event("text", piece)
        finally:
            stream.close()

    def _device_turn(self, chat, user_text: str, settings: dict[str, Any], route: dict[str, Any]) -> Iterator[Event]:
        confidence = Confidence()
        yield from self._device_pieces(chat, user_text, settings, confidence)
        yield Event("route", route={**route, "confidence": round(confidence.score, 4)})

    @staticmethod
    def _cloud_turn(chat, user_text: str, text: str, route: dict[str, Any]) -> Iterator[Event]:
        shown = False
        try:
            yield Event("replace", text)
            shown = True
        finally:  # the question joins the history either way, with the answer the user saw
            chat.add_exchange(user_text, text if shown else "")
        yield Event("route", route=route)


def _cloud_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The fallback request's sampling fields from a device call's keyword arguments."""
    return {"max_tokens": settings.get("max_new_tokens"), "temperature": settings.get("temperature"),
            "top_p": settings.get("top_p"), "seed": settings.get("seed"), "stop": settings.get("stop")}
