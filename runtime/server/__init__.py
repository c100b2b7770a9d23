"""A local OpenAI-compatible server for a bundle: apps in any language talk to the device model over HTTP.

    edge-sdk serve bundles/smollm2              # http://127.0.0.1:8000/v1, one model, a queue of 8

protocol.py  requests and responses in the OpenAI API's shapes, errors in its error JSON
guard.py     who gets in: loopback Host names on a loopback bind, JSON POSTs only (cross-site requests)
intake.py    what a request may cost before it is answered: body size and time, strict JSON, prompt size
pool.py      N models, one generation each at a time, a bounded queue, work on threads
app.py       the Starlette application (routes, streaming, the route header)

Needs the `serve` extra (starlette and uvicorn, pure Python: it runs on a phone too).
"""
from __future__ import annotations

import os
from typing import Any


def serve(bundle, *, host: str = "127.0.0.1", port: int = 8000, instances: int = 1, max_queue: int = 8,
          api_key: str | None = None, model_name: str | None = None, device: str | None = None,
          threads: int | None = None, trusted_keys=None, router_options: dict[str, Any] | None = None,
          request_log: str | None = None, on_ready=None, adapter: str | None = None,
          load_options: dict[str, Any] | None = None) -> None:
    """Load `instances` copies of `bundle` and serve them until SIGINT/SIGTERM (uvicorn handles both).

    The bundle's run-time adapters are served as models of their own, "MODEL:ADAPTER"; `adapter` is the
    one requests for plain "MODEL" get (default: none, the base model). On a loopback `host` only requests
    addressed to a loopback name are answered (guard.py); `request_log` is created private (0600).
    `load_options` go to edge_sdk.load (max_context, force): each instance is checked against the memory left
    after the ones before it."""
    import uvicorn

    import edge_sdk

    from .app import Server
    from .guard import allowed_hosts
    from .pool import ModelPool

    log = open_private_log(request_log) if request_log else None  # before the models load: fail fast
    models = [edge_sdk.load(bundle, device=device, threads=threads, trusted_keys=trusted_keys, kind="decoder",
                            **(load_options or {})) for _ in range(instances)]
    if adapter is not None:
        from edge_sdk.errors import BundleError

        try:
            for m in models:
                m.adapter = adapter
        except ValueError as e:
            raise BundleError(str(e)) from None
    model_id = model_name or models[0].manifest.get("name") or os.path.basename(os.fspath(bundle))
    router = None
    if router_options:
        from edge_sdk.runtime.hybrid import Router

        router = Router(**{"queue": max_queue, **router_options})  # fallback calls wait in a queue as long
    server = Server(ModelPool(models, max_queue), model_id, api_key=api_key, router=router, request_log=log,
                    allowed_hosts=allowed_hosts(host))
    config = uvicorn.Config(server.app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5, lifespan="on")
    if on_ready is not None:
        on_ready(model_id)
    try:
        uvicorn.Server(config).run()
    finally:
        if log is not None:
            log.close()


def open_private_log(path):
    """Open `path` for appending, readable by its owner only (it will hold whole prompts): created 0600, never
    through a symlink planted at that name, never a FIFO or device; an existing file others can read is refused."""
    import stat

    from edge_sdk.errors import EdgeError

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        why = "it is a symbolic link" if os.path.islink(path) else e.strerror
        raise EdgeError(f"--log-requests {path}: cannot open it ({why}); give a path to a regular file of yours") from None
    st = os.fstat(fd)
    problem = None if stat.S_ISREG(st.st_mode) else "it is not a regular file"
    if problem is None and st.st_mode & 0o077:
        problem = f"others can read or write it (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it or choose a new file"
    if problem is not None:
        os.close(fd)
        raise EdgeError(f"--log-requests {path}: {problem}")
    return os.fdopen(fd, "a", encoding="utf-8")
