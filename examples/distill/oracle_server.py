"""The example's teacher served as an OpenAI-compatible endpoint: `task.oracle`, a keyword rule, behind
`POST /v1/chat/completions` (and `GET /v1/models`), so `edge-sdk serve --fallback` escalates to it as it would to
a cloud model. It answers the last user message's customer message with the team's name.

    python examples/distill/oracle_server.py --port 8090      # prints "listening on http://127.0.0.1:8090/v1"

A stand-in for a big model that knows the task, not one: it answers this task only, and instantly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task import message_of, oracle  # noqa: E402

MAX_BODY = 1 << 20
MODEL = "keyword-oracle"


def reply(body: dict) -> dict:
    """The chat completion `oracle` gives for a request body (the last user message is the question)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ValueError("no user message")
    content = users[-1].get("content")
    if isinstance(content, list):  # content parts: the text ones, in order
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if not isinstance(content, str):
        raise ValueError("the user message has no text")
    answer = oracle(message_of(content))
    return {"id": f"chatcmpl-oracle-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}}


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "example"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self._send(413, {"error": {"message": "body missing or too large"}})
        try:
            self._send(200, reply(json.loads(self.rfile.read(length))))
        except (ValueError, AttributeError) as exc:
            self._send(400, {"error": {"message": str(exc)}})

    def log_message(self, *args) -> None:  # quiet: the run's own output is the table
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
