"""edge-sdk serve BUNDLE: a local OpenAI-compatible HTTP server for apps in any language."""
from __future__ import annotations

import argparse

from ._common import add_load_args, count, load_options, positive

EPILOG = """\
endpoints (OpenAI API):
  POST /v1/chat/completions   messages -> reply; "stream": true for server-sent events
  POST /v1/completions        raw prompt -> continuation
  GET  /v1/models             the served model's id (the bundle's name, or --model-name)
  GET  /health                status, and how many generations run and wait

Omitted sampling fields take the bundle's defaults, not OpenAI's temperature 1: its manifest's
`generation` section (from the model's generation_config.json at export), else edge-sdk's (greedy,
repetition penalty 1.15); the same defaults as `edge-sdk run` and `chat`. A request's fields override
them; to change them for good, edit the manifest's `generation` section. Every answer carries where it was produced: a "route"
object and an X-Edge-Route header.

Web pages the user opens can reach a server on this machine too. So POSTs must carry
'Content-Type: application/json' (OpenAI's clients send it; 415 otherwise), and on the default
loopback bind only requests addressed to localhost, 127.0.0.1 or [::1] are answered (403 otherwise),
which stops DNS rebinding. --host 0.0.0.0 (or any non-loopback address) accepts any Host name and
other machines: require an API key there (--api-key-env).

Hybrid routing (--fallback): the device answers first; the fallback endpoint (any OpenAI-compatible
server) is asked when the prompt does not fit the device model, when the device answer's confidence
is low (--policy auto), or always first (--policy cloud-first). A prompt holding personal data
(e-mail, phone, card or IBAN numbers) is never sent unless the request allows it ("allow_cloud_pii":
true) or --redact replaces those parts with placeholders (restored in the reply).

examples:
  edge-sdk serve bundles/smollm2
  edge-sdk serve bundles/smollm2 --host 0.0.0.0 --port 8080 --api-key-env MY_KEY --instances 2
  edge-sdk serve bundles/smollm2 --fallback https://api.example.com/v1 --fallback-model big \\
      --fallback-key-env CLOUD_KEY --policy auto --redact

  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"model": "MODEL", "messages": [{"role": "user", "content": "Hi"}]}'
"""


def _port(text: str) -> int:
    from ._common import _number

    return _number(text, int, 1, 65535, what="a TCP port (1-65535)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a bundle over a local OpenAI-compatible HTTP API",
                       description="Serve a bundle over the OpenAI HTTP API, on this machine (loopback) unless "
                                   "--host says otherwise. Needs the serve extra (in a clone of edge-sdk: pip install -e "
                                   "'.[serve]').",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_args(p)  # BUNDLE, --device, --threads (per model), --trusted-key
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only, and only requests addressed to "
                        "a loopback name); a non-loopback address such as 0.0.0.0 serves other machines under any "
                        "name: set an API key then")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' (visible in ps: prefer "
                                                      "--api-key-env)")
    key.add_argument("--api-key-env", metavar="VAR", help="read the required API key from environment variable VAR")
    p.add_argument("--model-name", metavar="NAME", help="model id clients send (default: the bundle's name)")
    p.add_argument("--instances", type=positive, default=1, metavar="N",
                   help="models loaded side by side: N generations at once (default 1; each costs the bundle's memory)")
    p.add_argument("--max-queue", type=count, default=8, metavar="N",
                   help="requests that may wait for a model; more get 503 + Retry-After (default 8)")
    p.add_argument("--log-requests", metavar="FILE", help="append every request body to FILE (JSON lines; it holds "
                                                          "whole prompts, so it is created readable by you only)")
    h = p.add_argument_group("hybrid routing")
    h.add_argument("--fallback", metavar="URL", help="OpenAI-compatible endpoint to escalate to (e.g. https://host/v1)")
    h.add_argument("--fallback-model", metavar="NAME", help="model name at the fallback (default: the requested one)")
    h.add_argument("--fallback-key-env", metavar="VAR", help="environment variable holding the fallback's API key")
    h.add_argument("--policy", choices=("local-only", "auto", "cloud-first"), default=None,
                   help="local-only: never leave the device (default without --fallback); auto: escalate when needed "
                        "(default with --fallback); cloud-first: ask the fallback, the device if it fails")
    h.add_argument("--redact", action="store_true", help="send personal data to the fallback as placeholders")
    h.add_argument("--confidence-threshold", type=float, metavar="X",
                   help="escalate under auto when the device answer's confidence is below X (default: calibrated, "
                        "see docs/server.md)")
    h.add_argument("--fallback-timeout", type=float, default=30.0, metavar="S",
                   help="deadline in seconds for a whole fallback call, retries included (30)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        from edge_sdk import install_hint

        print(f"error: serving needs the serve extra ({e.name} is missing): {install_hint('serve')}", file=sys.stderr)
        return 2
    api_key = args.api_key
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"error: --api-key-env {args.api_key_env}: that environment variable is empty or not set", file=sys.stderr)
            return 2
    policy = args.policy or ("auto" if args.fallback else "local-only")
    if policy != "local-only" and not args.fallback:
        print(f"error: --policy {policy} needs --fallback URL", file=sys.stderr)
        return 2
    router = None
    if args.fallback or args.policy:
        fallback_key = None
        if args.fallback_key_env:
            fallback_key = os.environ.get(args.fallback_key_env)
            if not fallback_key:
                print(f"error: --fallback-key-env {args.fallback_key_env} is empty or not set", file=sys.stderr)
                return 2
        router = {"policy": policy, "fallback_url": args.fallback, "fallback_model": args.fallback_model,
                  "fallback_key": fallback_key, "redact": args.redact, "timeout": args.fallback_timeout,
                  "threshold": args.confidence_threshold}
    from edge_sdk.runtime.server import serve

    from edge_sdk.runtime.server.guard import is_loopback

    def ready(model_id):
        where = f"http://{args.host}:{args.port}"
        print(f"serving {model_id} on {where}/v1 ({args.instances} model(s), queue {args.max_queue}, policy {policy}"
              f"{', API key required' if api_key else ''}); Ctrl-C stops", file=sys.stderr, flush=True)
        if not api_key and not is_loopback(args.host):
            print(f"warning: {args.host} is reachable from other machines and no API key is set: anyone who can reach "
                  "this port can use the model; set one with --api-key-env", file=sys.stderr, flush=True)

    serve(args.bundle, host=args.host, port=args.port, instances=args.instances, max_queue=args.max_queue,
          api_key=api_key, model_name=args.model_name, device=args.device, threads=args.threads,
          trusted_keys=args.trusted_key, router_options=router, request_log=args.log_requests, on_ready=ready,
          adapter=args.adapter, load_options=load_options(args))
    return 0
