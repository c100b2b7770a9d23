"""`edge-sdk serve NAME --store DIR`: swap the served model for the store's active version without dropping requests.

A reload starts on SIGHUP or `POST /admin/reload` (with the API key; refused when the server has none). It
loads the store's active version (every file hashed again), asks it a smoke prompt, and only then swaps it
into the pool (pool.py `swap`): generations running on the old models finish there, the old models go
when they come back, requests arriving afterwards get the new ones. If the new version fails to load or
answer, the old one keeps serving and the error is reported (and kept for `GET /admin/reload`).

When the new version tokenizes differently (another tokenizer file, chat template or context length, or
other adapters), requests already tokenized by the old model must not be run on the new one: new requests
are then held at the door until the ones inside have finished (at most `drain_timeout` seconds), the swap
happens, and the held requests go on to the new model. An update that keeps the tokenizer (new weights, a
new adapter's file) swaps at once.

This module wraps the Starlette application (ASGI) instead of editing it: it answers /admin/reload, holds
requests during a drain, and installs the SIGHUP handler when the server starts.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any, Callable

ADMIN_PATH = "/admin/reload"


def tokenizes_alike(old: dict, new: dict) -> bool:
    """Whether prompt ids and limits computed with manifest `old` stay valid for a model of manifest `new`: the
    same tokenizer and chat template (their manifest sections and their files' hashes), the same context, and
    every adapter a waiting request may name still there."""
    def key(m: dict) -> Any:
        files = m["files"]
        opened = [m["tokenizer"].get("file"), m["tokenizer"].get("compact_file"), m["chat_template"].get("file")]
        return (json.dumps({k: m.get(k) for k in ("tokenizer", "chat_template")}, sort_keys=True),
                [files[f]["sha256"] if f in files else None for f in opened], m["graph"].get("max_context"))

    def adapters(m: dict) -> set:
        return set((m.get("lora") or {}).get("adapters") or {})
    return key(old) == key(new) and adapters(old) <= adapters(new)


class Reloader:
    """Reload `server`'s pool from `store`'s active version of `name`.

    load: path -> a loaded Model (edge_sdk.load with the serve options); called `instances` times per reload.
    """

    def __init__(self, server, store, name: str, load: Callable, instances: int, *, adapter: str | None = None,
                 drain_timeout: float = 120.0, log: Callable[[str], None] | None = None):
        self.server, self.store, self.name, self.load = server, store, name, load
        self.instances, self.adapter, self.drain_timeout = instances, adapter, drain_timeout
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.version = store.active_version(name)
        self.path = store.path(name)
        self.reloads = 0
        self.last_error: str | None = None
        self._busy = False
        self._inside = 0  # requests inside the application (not /admin, not held)
        self._open = asyncio.Event()
        self._open.set()
        self._idle: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- the reload -----------------------------------------------------------------------------------
    async def reload(self) -> dict[str, Any]:
        """Load the store's active version and swap it in; returns what happened (also on failure)."""
        if self._busy:
            return {"reloaded": False, "error": "a reload is already running", "version": self.version}
        self._busy = True
        t0 = time.perf_counter()
        try:
            path = self.store.path(self.name)
            version = self.store.active_version(self.name)
            models = await asyncio.to_thread(self._load_all, path)
            loaded = time.perf_counter() - t0
            old_manifest = self.server.pool.model.manifest
            held = not tokenizes_alike(old_manifest, models[0].manifest)
            if held:
                await self._drain()
            try:
                old = self.server.pool.swap(models)
            finally:
                self._open.set()
            del old  # dropped here; the ones still generating go when their generation ends
            previous, self.version, self.path = self.version, version, path
            self.reloads += 1
            self.last_error = None
            out = {"reloaded": True, "name": self.name, "version": version, "previous": previous,
                   "load_s": round(loaded, 3), "swap_s": round(time.perf_counter() - t0, 3), "held_requests": held}
            self.log(f"reloaded {self.name} {version} (was {previous}) in {out['swap_s']:.1f} s"
                     + (" (new requests were held until the running ones finished: the tokenizer changed)" if held
                        else ""))
            return out
        except Exception as e:  # noqa: BLE001 - whatever failed, the old version keeps serving
            self.last_error = f"{type(e).__name__}: {e}"
            self.log(f"reload of {self.name} failed, still serving {self.version}: {self.last_error}")
            return {"reloaded": False, "error": self.last_error, "version": self.version}
        finally:
            self._busy = False

    def _load_all(self, path) -> list:
        models = [self.load(path) for _ in range(self.instances)]
        if self.adapter is not None:
            for m in models:
                m.adapter = self.adapter
        answer = models[0].generate("Hello", max_new_tokens=4, temperature=0.0)  # the smoke prompt
        if not isinstance(answer, str):
            raise RuntimeError("the new version did not answer its smoke prompt")
        return models

    async def _drain(self) -> None:
        """Hold new requests; wait until the requests inside have finished (or drain_timeout)."""
        self._open.clear()
        if self._inside:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), self.drain_timeout)
            except asyncio.TimeoutError:
                self.log(f"reload: {self._inside} request(s) still running after {self.drain_timeout:.0f} s; "
                         "swapping anyway (they finish on the old model)")
            finally:
                self._idle = None

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "path": str(self.path), "reloads": self.reloads,
                "reloading": self._busy, "last_error": self.last_error}

    def _on_sighup(self) -> None:
        assert self.loop is not None
        self.log(f"SIGHUP: reloading {self.name} from {self.store.root}")
        self.loop.create_task(self.reload())

    # -- ASGI -----------------------------------------------------------------------------------------
    def wrap(self, app):
        """The ASGI application to serve: `app` plus /admin/reload, the drain, and SIGHUP."""
        async def asgi(scope, receive, send):
            if scope["type"] == "lifespan":
                return await app(scope, self._lifespan(receive), send)
            if scope["type"] != "http":
                return await app(scope, receive, send)
            if scope["path"] == ADMIN_PATH:
                return await self._admin(scope, receive, send)
            if scope["path"] != "/health":
                await self._open.wait()  # a drain holds new requests here
            self._inside += 1
            try:
                await app(scope, receive, send)
            finally:
                self._inside -= 1
                if self._inside == 0 and self._idle is not None:
                    self._idle.set()
        return asgi

    def _lifespan(self, receive):
        async def wrapped():
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                try:
                    self.loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
                    pass
            return message
        return wrapped

    async def _admin(self, scope, receive, send) -> None:
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        from .protocol import ApiError

        request = Request(scope, receive)
        try:
            if self.server.api_key is None:
                raise ApiError(403, "the admin endpoint needs an API key: start the server with --api-key-env VAR "
                                    "(or reload with SIGHUP)", type="permission_error", code="admin_needs_api_key")
            self.server._authorize(request)
            if request.method == "GET":
                response = JSONResponse(self.status())
            elif request.method == "POST":
                result = await self.reload()
                status = 200 if result["reloaded"] else 409 if "already running" in result.get("error", "") else 500
                response = JSONResponse(result, status_code=status)
            else:
                raise ApiError(405, "use POST to reload, GET for the status", code="method_not_allowed")
        except ApiError as e:
            response = JSONResponse(e.body(), status_code=e.status, headers=e.headers)
        await response(scope, receive, send)
