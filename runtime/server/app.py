"""The OpenAI-compatible HTTP API over a pool of device models (Starlette; served by uvicorn).

    POST /v1/chat/completions   messages -> reply (JSON, or server-sent events with "stream": true)
    POST /v1/completions        raw prompt (or token ids) -> continuation; logprobs and echo for evaluations
    POST /v1/embeddings         texts -> vectors, when an embedder bundle is served too (embeddings.py)
    GET  /v1/models             the served model ids: its name, folder name and source alias (and adapters)
    POST /tokenize, /detokenize, GET /tokenizer_info   the model's tokenizer (tokens.py)
    GET  /health                liveness, and how busy the pool is

Every answer says where it was produced: a `route` object in the JSON (and in each streamed chunk)
and an `X-Edge-Route` header, e.g. `device; reason=local-only`. With a hybrid router (hybrid/) the
target can also be the fallback endpoint.

The event loop only moves bytes: parsing, validating and tokenizing a request run on a thread
(intake.py bounds what each may cost), generation on the pool's threads (pool.py); guard.py
decides which requests get in at all.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from edge_sdk.errors import ContextLengthError, EdgeError
from edge_sdk.runtime.hybrid import Confidence, RouteRequest

from . import intake, logprobs, protocol, structured
from .guard import Guard
from .pool import Job, ModelPool
from .protocol import ApiError, ClientGone

log = logging.getLogger("uvicorn.error")


def route_header(route: dict[str, Any]) -> str:
    parts = [route["target"], f"reason={route['reason']}"]
    if route.get("confidence") is not None:
        parts.append(f"confidence={route['confidence']:.3f}")
    if route.get("degraded"):
        parts.append("degraded")
    return "; ".join(parts)


class Server:
    """The request handlers; `app` is the Starlette application."""

    def __init__(self, pool: ModelPool, model_id: str, *, api_key: str | None = None, router=None,
                 request_log=None, allowed_hosts: frozenset[str] | None = None,
                 body_seconds: float = intake.BODY_SECONDS, embedder=None):
        """allowed_hosts: the Host names accepted (guard.allowed_hosts(bind)); None accepts any.
        body_seconds: the time a request body may take to arrive.
        embedder: an Embedder (edge_sdk.load of an embedder bundle) to serve on /v1/embeddings."""
        self.pool, self.model_id, self.api_key, self.router = pool, model_id, api_key, router
        self.request_log = request_log  # a file to append each request's JSON to (tests, audits)
        self.body_seconds = body_seconds
        self._log_lock = threading.Lock()
        model = pool.model
        longest = intake.longest_token_bytes(model.tokenizer) if hasattr(model, "tokenizer") else None
        # A prompt of more bytes than this cannot fit the model's context (see intake.py); None: no bound known.
        self.prompt_limit = model.max_context * longest if longest else None
        # The body cap: room for any prompt that could fit, twice over for JSON's escapes (\uXXXX: 6 bytes for a
        # 3-byte character) and twice again for the rest; the full 8 MB when a fallback's larger model may take what
        # the device cannot. Every byte over what can be answered is work an abusive client makes us do.
        self._fallback = router is not None and router.client is not None and router.policy.name != "local-only"
        self.max_body = protocol.MAX_BODY if self._fallback or self.prompt_limit is None else \
            min(protocol.MAX_BODY, max(intake.MIN_BODY, 4 * self.prompt_limit))
        # Requests are parsed and tokenized here, off the event loop. Two threads: the GIL runs one at a time
        # anyway, and a second lets a small request pass while a large one is prepared.
        self._prep = ThreadPoolExecutor(max_workers=2, thread_name_prefix="edge-sdk-prep")
        self.names = [model_id] + _aliases(model, model_id)
        self._tokens: logprobs.Tokens | None = None
        from .embeddings import Embeddings
        from .tokens import TokenizerRoutes

        self.embeddings = None
        if embedder is not None:
            name = str(embedder.manifest.get("name") or embedder.bundle_dir.name)
            self.embeddings = Embeddings(self, embedder, [name] + _aliases(embedder, name))
        self.app = Starlette(routes=[
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            *TokenizerRoutes(self).routes(),
            *(self.embeddings.routes() if self.embeddings is not None else []),
        ], middleware=[Middleware(Guard, allowed=allowed_hosts)],
            exception_handlers={ApiError: self._api_error, HTTPException: self._http_error,
                                Exception: self._unexpected}, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        yield
        self.pool.stop_all()  # shutting down (Ctrl-C, SIGTERM): running generations stop at their next token
        self._prep.shutdown(wait=False, cancel_futures=True)
        if self.embeddings is not None:
            self.embeddings.shutdown()

    # -- plumbing -----------------------------------------------------------------------------------
    async def _api_error(self, request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def _http_error(self, request, exc: HTTPException):
        kind = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else None
        return JSONResponse(ApiError(exc.status_code, exc.detail or "error", code=kind).body(),
                            status_code=exc.status_code, headers=protocol.CLOSE)  # its body was not read

    async def _unexpected(self, request, exc: Exception):
        # The details (which may hold server paths) go to the server log with the traceback, not to the client.
        return JSONResponse(ApiError(500, f"internal error ({type(exc).__name__}); the server log has the details",
                                     type="server_error").body(), status_code=500)

    def _authorize(self, request: HttpRequest) -> None:
        if self.api_key is None:
            return
        # Constant time: how long a wrong key takes to refuse must not tell how much of it was right.
        sent = request.headers.get("authorization", "").encode("latin-1")  # the header's bytes, as received
        if not hmac.compare_digest(sent, f"Bearer {self.api_key}".encode()):
            raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')",
                           type="authentication_error", code="invalid_api_key", headers=protocol.CLOSE)

    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._prep, fn, *args)

    def _log_request(self, path: str, body: Any) -> None:
        if self.request_log is None:
            return
        line = json.dumps({"path": path, "body": body}) + "\n"
        with self._log_lock:  # requests are prepared on two threads: one whole line each
            self.request_log.write(line)
            self.request_log.flush()

    # -- endpoints ----------------------------------------------------------------------------------
    async def health(self, request):
        health = {"status": "ok", "model": self.model_id, "instances": len(self.pool.models),
                  "running": self.pool.running, "waiting": self.pool.waiting,
                  "served": self.pool.served, "cancelled": self.pool.cancelled}
        if self.router is not None:
            health["cloud"] = self.router.stats()  # fallback calls: running, waiting, served, failed, refused
        return JSONResponse(health)

    def model_ids(self) -> dict[str, Any]:
        """Served model id -> the adapter it runs with: the bundle (with the serve default) and each of its
        run-time adapters as "MODEL:ADAPTER", under each of its names (the id first, then the bundle's folder
        name and the catalog alias it was exported from)."""
        model = self.pool.model
        ids: dict[str, Any] = {}
        for name in self.names:
            ids[name] = model.adapter
            ids.update({f"{name}:{adapter}": adapter for adapter in model.adapters})
        return ids

    async def models(self, request):
        self._authorize(request)
        served = list(self.model_ids()) + (self.embeddings.names if self.embeddings is not None else [])
        return JSONResponse({"object": "list", "data": [{"id": mid, "object": "model", "created": 0,
                                                         "owned_by": "edge-sdk"} for mid in served]})

    async def chat(self, request):
        return await self._generate(request, "chat")

    async def completions(self, request):
        return await self._generate(request, "completion")

    # -- generation ---------------------------------------------------------------------------------
    async def _generate(self, request: HttpRequest, kind: str):
        self._authorize(request)
        data = await intake.read_body(request, self.max_body, self.body_seconds)
        req, ids, plan = await self._off_loop(self._prepare, request.url.path, data, kind)
        model = self.pool.model
        room = model.max_context - len(ids)
        fits = room >= 1 and not (req.max_tokens is not None and req.max_tokens > room)
        if self.router is not None:
            return await self._routed(request, req, ids, fits, plan)
        if not fits:
            raise self._too_long(model, req, ids)
        local = {"target": "device", "reason": "local-only"}
        if plan is not None:
            return await structured.respond(self, request, req, plan, local)
        return await self.respond_from_device(request, req, ids, local)

    @staticmethod
    def _too_long(model, req: protocol.Request, ids) -> ApiError:
        return ApiError(400, f"this model's maximum context is {model.max_context} tokens; the prompt has {len(ids)}"
                        + (f" and max_tokens asks for {req.max_tokens} more" if req.max_tokens else ""),
                        param="messages" if req.kind == "chat" else "prompt", code="context_length_exceeded")

    # -- hybrid routing: the server drives the router's decision (hybrid/decision.py) ----------------------
    async def _routed(self, request: HttpRequest, req: protocol.Request, ids: list[int], fits: bool, plan=None):
        router = self.router
        settings = {"max_tokens": req.max_tokens, **{k: req.sampling.get(k) for k in ("temperature", "top_p", "seed",
                                                                                          "stop")},
                    **req.structured}  # response_format, tools, ...: forwarded unchanged
        facts = RouteRequest(req.kind, req.messages, req.prompt, req.model, settings, req.route, req.allow_cloud_pii,
                             fits)
        findings = await asyncio.to_thread(router.inspect, facts)  # the privacy gate is CPU work: off the loop
        score = outcome = text = reply = job = None
        route = router.decide(facts, findings)
        while route.next:
            if route.next == "device":  # final: streams token by token
                if not fits:
                    raise self._too_long(self.pool.model, req, ids)
                if plan is not None:
                    return await structured.respond(self, request, req, plan, route.public())
                return await self.respond_from_device(request, req, ids, route.public())
            if route.next == "judge":  # the whole answer is needed for its confidence
                confidence, job = Confidence(), Job()
                if plan is not None:
                    text = await structured.collect(self, request, req, plan, job, observer=confidence)
                else:
                    text = await self._collect(request, self.device_pieces(req, ids, job, observer=confidence), job)
                score = round(confidence.score, 4)
            else:
                reply, outcome = await router.fallback_async(facts, findings, route)
            route = router.decide(facts, findings, score, outcome)
        if route.target == "refuse":
            tokens = f"the prompt ({len(ids)} tokens) does not fit this model's context"
            if route.error == "server_busy":
                raise ApiError(503, f"{tokens}, and the fallback is busy; retry shortly", type="server_error",
                               code="server_busy", headers={"Retry-After": "1"})
            why = ("holds personal data, so it was not sent to the fallback" if route.reason == "personal_data"
                   else "the fallback could not answer it (the server log says why)")
            raise ApiError(400, f"{tokens} and {why}", code="context_length_exceeded")
        if route.target == "cloud":
            usage = {k: reply.usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
            if reply.tool_calls or plan is not None:
                return structured.answer(self, req, reply.text, list(reply.tool_calls), reply.finish, usage,
                                         route.public())
            return self._answer(req, reply.text, reply.finish, usage, route.public())
        if plan is not None:  # the judged device answer (a Reply)
            return structured.answer(self, req, str(text), [c.to_openai() for c in text.tool_calls], text.finish_reason,
                                     self._usage(ids, job), route.public(), job)
        return self._answer(req, text, None, self._usage(ids, job), route.public(), job)

    def _answer(self, req, text: str, finish, usage, route, job=None):
        """A whole answer (the fallback's, or a judged device answer), as JSON or as a one-piece stream."""
        if req.stream:
            async def once():
                yield text

            return self.sse(req, once(), route, lambda: usage, job, finish=finish)
        return self.json(req, text, job, [], route, finish=finish, usage=usage)

    def _prepare(self, path: str, data: bytes, kind: str) -> tuple[protocol.Request, list[int], Any]:
        """Body bytes -> (validated request, prompt ids, structured.Plan or None). CPU work: runs on a thread,
        never on the event loop."""
        body = intake.parse_json(data)
        self._log_request(path, body)
        messages = body.get("messages") if isinstance(body, dict) and kind == "chat" else None
        if not self._fallback and isinstance(messages, list) and len(messages) > self.pool.model.max_context:
            # before validating thousands of messages: each takes at least one token, so they cannot fit
            raise ApiError(400, f"this model's maximum context is {self.pool.model.max_context} tokens and the request "
                                f"has {len(messages)} messages (each takes at least one token); shorten it",
                           param="messages", code="context_length_exceeded")
        req = protocol.parse(body, kind)
        if self.embeddings is not None and req.model in self.embeddings.names:
            raise ApiError(400, f"{req.model!r} is an embedder: ask POST /v1/embeddings", param="model")
        if req.model not in self.model_ids():
            served = ", ".join(repr(m) for m in self.model_ids())
            raise ApiError(404, f"the model {req.model!r} does not exist here; this server serves {served}",
                           param="model", code="model_not_found")
        plan = structured.plan(self, req)  # response_format / tools / tool turns: checked and compiled now
        return req, (plan.ids if plan is not None else self._prompt_ids(self.pool.model, req)), plan

    def _prompt_ids(self, model, req: protocol.Request) -> list[int]:
        param = "messages" if req.kind == "chat" else "prompt"
        if not self._may_escalate(req):  # else the fallback may take what the device cannot
            self._check_size(model, req, param)
        if req.prompt_ids is not None:  # token ids (from /tokenize): in the vocabulary, that is all
            vocab = model.tokenizer.vocab_size
            if max(req.prompt_ids) >= vocab:
                raise ApiError(400, f"'prompt' holds token id {max(req.prompt_ids)}; this model's ids are 0..{vocab - 1}",
                               param="prompt")
            return list(req.prompt_ids)
        from jinja2.exceptions import TemplateError

        try:
            if req.kind == "chat":
                if model.template is None:
                    raise ApiError(400, "this model has no chat template (a base model): it continues plain text; "
                                   "send the text to /v1/completions as `prompt`", param="messages",
                                   code="no_chat_template")
                return model.encode_prompt(req.messages)
            return model.encode_prompt(req.prompt, raw=True)
        except (ValueError, TypeError, TemplateError) as e:  # TemplateError: the template's raise_exception
            raise ApiError(400, str(e), param=param) from None
        except EdgeError as e:
            log.error("encoding a prompt failed: %s", e)  # may name server paths: the log's, not the client's
            raise ApiError(500, "this bundle could not encode the prompt; the server log has the details",
                           type="server_error") from None

    def _may_escalate(self, req: protocol.Request) -> bool:
        """Whether a prompt too long for the device may still go to the fallback (hybrid/decision.py: not under
        local-only, not when the caller asks for the device)."""
        router = self.router
        return router is not None and router.client is not None and router.policy.name != "local-only" \
            and req.route != "device"

    def _check_size(self, model, req: protocol.Request, param: str) -> None:
        """Refuse before tokenizing a prompt too large to fit: tokenizing megabytes would hold a CPU (and the GIL)
        for seconds. A prompt has at least one token per message and per `longest` bytes of text."""
        why = None
        if req.kind == "chat" and len(req.messages) > model.max_context:
            why = f"the request has {len(req.messages)} messages (each takes at least one token)"
        elif req.prompt_ids is not None:
            if len(req.prompt_ids) > model.max_context:
                why = f"'prompt' has {len(req.prompt_ids)} token ids"
        elif self.prompt_limit is not None:
            size = intake.prompt_bytes(req)
            if size > self.prompt_limit:
                why = (f"the prompt has {size} bytes of text, more than any prompt of that many tokens can hold "
                       f"({self.prompt_limit})")
        if why is not None:
            raise ApiError(400, f"this model's maximum context is {model.max_context} tokens and {why}; shorten it",
                           param=param, code="context_length_exceeded")

    def settings(self, req: protocol.Request, ids: list[int]) -> dict[str, Any]:
        model = self.pool.model
        room = model.max_context - len(ids)
        default = int(model.defaults.get("max_new_tokens") or 256)
        s = {k: v for k, v in req.sampling.items() if v is not None}
        s["max_new_tokens"] = min(default if req.max_tokens is None else req.max_tokens, room)
        s["adapter"] = self.model_ids().get(req.model, model.adapter)
        return s

    async def device_pieces(self, req, ids, job: Job, observer=None) -> AsyncIterator[str]:
        """The reply's text pieces from a pool model (waiting for one if all are busy)."""
        model = await self.pool.acquire(job)
        settings = self.settings(req, ids)
        if req.logprobs is not None:  # seen with the model's own logits, as the router's confidence is
            job.logprobs = logprobs.TokenLogprobs(req.logprobs)
            observer = job.logprobs if observer is None else logprobs.Tee(observer, job.logprobs)

        def start():
            if req.echo and req.logprobs is not None:
                job.prompt_logprobs = logprobs.score_prompt(model, ids, req.logprobs, settings["adapter"])
            return model.stream_ids(ids, confidence=observer, **settings)

        async for piece in self.pool.stream(model, start, job):
            yield piece

    async def respond_from_device(self, request, req, ids, route: dict[str, Any]):
        job = Job()
        pieces = self.device_pieces(req, ids, job)
        if req.stream:
            first = await self._first(request, pieces, job)  # a full queue is a 503 now, not an error in a 200 stream
            return self.sse(req, _prepend(first, pieces), route, lambda: self._usage(ids, job), job)
        text = await self._collect(request, pieces, job)
        return self.json(req, text, job, ids, route)

    async def _first(self, request, pieces: AsyncIterator[str], job: Job):
        async def first():
            try:
                return await pieces.__anext__()
            except StopAsyncIteration:
                return None

        try:
            return await self._unless_gone(request, job, first())
        except ContextLengthError as e:
            raise ApiError(400, str(e), code="context_length_exceeded") from None

    async def _collect(self, request, pieces: AsyncIterator[str], job: Job) -> str:
        async def join():
            return "".join([piece async for piece in pieces])

        try:
            return await self._unless_gone(request, job, join())
        except ContextLengthError as e:
            raise ApiError(400, str(e), code="context_length_exceeded") from None

    @staticmethod
    async def _unless_gone(request, job: Job, work):
        """Await `work` as a task of its own. If the client hangs up meanwhile, stop the job and cancel the task:
        a request still waiting for a model leaves the queue at once, a running one stops at its next token."""
        task = asyncio.ensure_future(work)
        gone = False

        async def watch():
            nonlocal gone
            while not task.done():
                if await request.is_disconnected():
                    gone = True
                    job.stop.set()
                    task.cancel()
                    return
                await asyncio.sleep(0.1)

        watcher = asyncio.ensure_future(watch())
        try:
            return await task
        except asyncio.CancelledError:
            if gone:
                raise ClientGone() from None
            raise
        finally:
            watcher.cancel()

    def _usage(self, ids, job: Job) -> dict[str, int]:
        n = getattr(job.stats, "new_tokens", 0) or 0
        return {"prompt_tokens": len(ids), "completion_tokens": n, "total_tokens": len(ids) + n}

    def json(self, req, text: str, job: Job, ids, route: dict[str, Any], finish: str | None = None,
             usage: dict | None = None) -> JSONResponse:
        finish = finish or protocol.FINISH.get(getattr(job.stats, "stop_reason", "eos"), "stop")
        lp = None
        if getattr(job, "logprobs", None) is not None:  # asked for, and the device answered
            stopped = getattr(job.stats, "stop_reason", None) == "stop"
            reply = logprobs.reply_tokens(job.logprobs.tokens, self.token_texts(), text, stopped)
            lp = self._logprobs(req, reply, job.prompt_logprobs if req.echo else None)
        if req.echo:
            text = self._prompt_text(req) + text
        body = protocol.completion(req, protocol.new_id(req.kind), text, finish, usage or self._usage(ids, job), route,
                                   logprobs=lp)
        return JSONResponse(body, headers={"X-Edge-Route": route_header(route)})

    def token_texts(self) -> logprobs.Tokens:
        if self._tokens is None:
            model = self.pool.model
            self._tokens = logprobs.Tokens(model.tokenizer, set(model.eos_token_ids) | set(model.tokenizer.special_ids))
        return self._tokens

    def _logprobs(self, req, reply: list, prompt: list | None, offset: int = 0) -> dict:
        if req.kind == "chat":
            return {"content": logprobs.chat_content(reply, self.token_texts()), "refusal": None}
        return logprobs.legacy((prompt or []) + reply, self.token_texts(), offset)

    def _prompt_text(self, req) -> str:
        return req.prompt if req.prompt is not None else self.pool.model.tokenizer.decode(req.prompt_ids)

    def sse(self, req, pieces: AsyncIterator[str | None], route: dict[str, Any], usage, job: Job | None,
            finish: str | None = None) -> StreamingResponse:
        rid = protocol.new_id(req.kind)

        async def events():
            def event(obj) -> str:
                return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

            observed = getattr(job, "logprobs", None)
            cursor = logprobs.Cursor(observed, self.token_texts()) if observed is not None else None
            shown, offset = 0, 0  # bytes of reply text sent; characters of token text sent (completions' offsets)

            def lp(scored, prompt=None):
                nonlocal offset
                out = self._logprobs(req, scored, prompt, offset)
                offset += sum(len(t) for t in out.get("tokens", ()))
                return out

            try:
                if req.kind == "chat":
                    yield event(protocol.chunk(req, rid, role=True, route=route))
                elif req.echo:  # the prompt first (with its logprobs), as OpenAI streams an echo
                    text = self._prompt_text(req)
                    prompt = job.prompt_logprobs if cursor is not None else None
                    yield event(protocol.chunk(req, rid, text=text, route=route,
                                               logprobs=lp([], prompt) if prompt is not None else None))
                async for piece in pieces:
                    if piece:
                        shown += len(piece.encode("utf-8"))
                        yield event(protocol.chunk(req, rid, text=piece, route=route,
                                                   logprobs=lp(cursor.take(shown)) if cursor is not None else None))
                reason = finish or protocol.FINISH.get(getattr(getattr(job, "stats", None), "stop_reason", "eos"), "stop")
                stopped = getattr(getattr(job, "stats", None), "stop_reason", None) == "stop"
                rest = cursor.take(shown, final=True, stopped=stopped) if cursor is not None else []
                yield event(protocol.chunk(req, rid, finish=reason, route=route, logprobs=lp(rest) if rest else None))
                if req.include_usage:
                    yield event(protocol.chunk(req, rid, usage=usage(), route=route))
                yield "data: [DONE]\n\n"
            except ApiError as e:  # after the 200 started: report in the stream, as OpenAI does
                yield f"data: {json.dumps(e.body())}\n\n"
            finally:
                if job is not None:
                    job.stop.set()  # the client left mid-stream: stop generating

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"X-Edge-Route": route_header(route), "Cache-Control": "no-cache"})


def _aliases(model, model_id: str) -> list[str]:
    """More names clients may use for the model: the bundle's folder name and the catalog alias it was exported
    from (provenance.source when that was an alias; a path or hub id is not a name). Names with ':' would read as
    MODEL:ADAPTER, so they are left out."""
    folder = getattr(model, "bundle_dir", None)
    provenance = (getattr(model, "manifest", None) or {}).get("provenance") or {}
    alias = provenance.get("source") if provenance.get("kind") == "alias" else None
    out: list[str] = []
    for name in (folder.name if folder is not None else None, alias):
        if isinstance(name, str) and name and ":" not in name and name != model_id and name not in out:
            out.append(name)
    return out


async def _prepend(first, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    if first is None:
        return
    yield first
    async for piece in rest:
        yield piece


def create_app(pool: ModelPool, model_id: str, **kwargs) -> Starlette:
    return Server(pool, model_id, **kwargs).app
