"""A small client for the fallback endpoint: any server speaking the OpenAI HTTP API (vLLM, TGI,
llama-server, a cloud API, another `edge-sdk serve`). Standard library only: it runs on a phone.

Bounded:
- `timeout` is a deadline for the whole call, retries and backoff included: a server that trickles its
  reply a byte at a time is cut off at the deadline (a timer shuts the socket down; per-read socket timeouts
  alone would let each byte restart the clock). Name resolution is the one step it cannot interrupt.
- Failures that may pass (connection refused, 429, 5xx, timeouts) are retried with exponential backoff
  while time remains; anything else fails at once. A reply is read up to `max_reply` bytes.
- Redirects are never followed, not even to the same origin without the key: what the user allowed to leave
  the device is a request to *this* endpoint, and a 307/308 would re-send the prompt itself (not only the
  key) elsewhere, while a 301/302/303 turns the POST into a GET without a body, which no API answers. An
  endpoint that redirects a POST is misconfigured; the error says to configure the final URL.
FallbackError messages name the URL and quote the server: they are for the log, not for API clients.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

MAX_REPLY = 16 << 20  # bytes


class FallbackError(Exception):
    """The fallback could not answer (unreachable, too slow, or an error reply)."""


class FallbackClient:
    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, retries: int = 2, backoff: float = 0.5, max_reply: int = MAX_REPLY):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the fallback URL must start with http:// or https://, got {base_url!r}")
        parts = urlsplit(base_url)
        if not parts.hostname:
            raise ValueError(f"the fallback URL has no host: {base_url!r}")
        try:
            parts.port
        except ValueError:
            raise ValueError(f"the fallback URL has an invalid port: {base_url!r}") from None
        if not timeout > 0:
            raise ValueError(f"the fallback timeout must be > 0 seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.timeout, self.retries, self.backoff, self.max_reply = timeout, retries, backoff, max_reply
        self._parts = urlsplit(self.base_url)

    def complete(self, path: str, body: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
        """POST `body` to `<base_url>/<path>` (e.g. "chat/completions"); the decoded JSON reply.
        `deadline` (time.monotonic()) defaults to now + timeout."""
        deadline = time.monotonic() + self.timeout if deadline is None else deadline
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        target = f"{self._parts.path.rstrip('/')}/{path}"
        last = "no attempt was made before the deadline"
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff * 2 ** (attempt - 1)
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            if time.monotonic() >= deadline:
                break
            try:
                status, payload, location = self._post(target, data, headers, deadline)
            except _Timeout:
                last = f"no complete answer within {self.timeout:g} s"
                break
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if 200 <= status < 300:
                try:
                    return json.loads(payload)
                except ValueError:
                    raise FallbackError(f"the fallback at {self.base_url} answered with something that is not "
                                        f"JSON: {payload[:200]!r}") from None
            if 300 <= status < 400:
                raise FallbackError(f"the fallback at {self.base_url} redirects (HTTP {status} to {location!r}); "
                                    "redirects are not followed (the API key must not go elsewhere): configure "
                                    "the final URL")
            last = f"HTTP {status}: {payload[:300].decode('utf-8', 'replace')}"
            if status != 429 and status < 500:
                break  # the request itself is wrong: repeating it will not help
        raise FallbackError(f"the fallback at {self.base_url} did not answer ({last})")

    def _post(self, target: str, data: bytes, headers: dict[str, str], deadline: float):
        """One attempt: (status, body bytes, Location header). _Timeout at the deadline."""
        remaining = deadline - time.monotonic()
        host, port = self._parts.hostname, self._parts.port
        if self._parts.scheme == "https":
            import ssl  # ~40 ms, and only for https

            conn = http.client.HTTPSConnection(host, port, timeout=remaining, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=remaining)
        expired = threading.Event()

        def cut():  # the deadline: wake any read or write blocked on this connection
            expired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        timer = threading.Timer(remaining, cut)
        timer.daemon = True
        timer.start()
        try:
            conn.connect()
            if expired.is_set():  # the timer went off before the socket existed: nothing was cut
                raise _Timeout()
            conn.request("POST", target, body=data, headers=headers)
            resp = conn.getresponse()
            chunks, size = [], 0
            while True:
                chunk = resp.read(min(65536, self.max_reply + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_reply:
                    raise FallbackError(f"the fallback's reply is larger than {self.max_reply >> 20} MB")
                if expired.is_set():
                    raise _Timeout()
            if expired.is_set():
                raise _Timeout()
            return resp.status, b"".join(chunks), resp.getheader("Location")
        except (OSError, http.client.HTTPException):
            if expired.is_set() or time.monotonic() >= deadline:
                raise _Timeout() from None
            raise
        finally:
            timer.cancel()
            conn.close()


class _Timeout(Exception):
    pass
