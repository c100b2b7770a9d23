"""A local OpenAI-compatible server for a bundle: apps in any language talk to the device model over HTTP.

    edge-sdk serve bundles/smollm2              # http://127.0.0.1:8000/v1, one model, a queue of 8

protocol.py  requests and responses in the OpenAI API's shapes, errors in its error JSON
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
          request_log: str | None = None, on_ready=None, adapter: str | None = None, store=None) -> None:
    """Load `instances` copies of `bundle` and serve them until SIGINT/SIGTERM (uvicorn handles both).

    The bundle's run-time adapters are served as models of their own, "MODEL:ADAPTER"; `adapter` is the
    one requests for plain "MODEL" get (default: none, the base model). store: (Store, name) when `bundle` is
    that store's active version: SIGHUP or POST /admin/reload swaps in a newer one (reload.py)."""
    import uvicorn

    import edge_sdk

    from .app import Server
    from .pool import ModelPool

    models = [edge_sdk.load(bundle, device=device, threads=threads, trusted_keys=trusted_keys, kind="decoder")
              for _ in range(instances)]
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
    log = open(request_log, "a", encoding="utf-8") if request_log else None
    server = Server(ModelPool(models, max_queue), model_id, api_key=api_key, router=router, request_log=log)
    app = server.app
    if store is not None:
        from .reload import Reloader

        def load(path):
            return edge_sdk.load(path, device=device, threads=threads, trusted_keys=trusted_keys, kind="decoder")

        app = Reloader(server, *store, load, instances, adapter=adapter).wrap(app)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5, lifespan="on")
    if on_ready is not None:
        on_ready(model_id)
    try:
        uvicorn.Server(config).run()
    finally:
        if log is not None:
            log.close()
