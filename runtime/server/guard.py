"""What the server lets in at the door, before any handler runs: requests addressed to it, carrying JSON.

Any web page the user opens can send requests to a server on the user's own machine. Two defences:

- Content-Type. A page may POST `text/plain` or form data anywhere without asking (a "simple" cross-origin
  request), and a key-less server would generate for it (and spend paid fallback calls). A JSON content type
  makes the browser ask first (a CORS preflight), which this server never grants. So a POST must say
  `application/json` (415 otherwise), as OpenAI's clients do.
- Host. DNS rebinding points a name the attacker controls at 127.0.0.1, and the page then reads the answers
  as its own origin; the Host header still carries the attacker's name. On a loopback bind only loopback
  names are accepted (403): localhost, 127.0.0.1, [::1] and the bound address, with or without a port.

A non-loopback bind (`--host 0.0.0.0`) serves other machines under whatever name they use, so every Host is
accepted there: such a server should require an API key.
"""
from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse

from .protocol import CLOSE, ApiError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True for an address (or the name localhost) that only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str) -> frozenset[str] | None:
    """The Host names a server bound to `bind` accepts: loopback names for a loopback bind, else any (None)."""
    if not is_loopback(bind):
        return None
    return LOOPBACK_NAMES | {bind.strip("[]").lower()}


def host_name(header: str) -> str | None:
    """The name in a Host header ("localhost:8000" -> "localhost", "[::1]:8000" -> "::1"); None if malformed."""
    h = header.strip().lower()
    if h.startswith("["):  # an IPv6 literal
        end = h.find("]")
        name, rest = h[1:end], h[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name
    name, colon, port = h.partition(":")
    if colon and not port.isdigit():
        return None
    return name


class Guard:
    """ASGI middleware: refuse a request whose Host is not allowed (403) or a POST that is not JSON (415)."""

    def __init__(self, app, allowed: frozenset[str] | None = None):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            error = self.check(scope)
            if error is not None:
                # Refused before its body is read: close the connection rather than read the body (protocol.CLOSE).
                await JSONResponse(error.body(), status_code=error.status, headers=CLOSE)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, scope) -> ApiError | None:
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get(b"host")
        # Browsers always send Host; a request without one (HTTP/1.0 tools) cannot come from a rebinding page.
        if self.allowed is not None and host is not None and host_name(host) not in self.allowed:
            return ApiError(403, f"this server listens on loopback and answers only requests addressed to localhost, "
                                 f"127.0.0.1 or [::1], not {host[:100]!r}; to serve other names, start it with "
                                 "--host and an API key", type="permission_error", code="host_not_allowed")
        if scope.get("method") == "POST":
            media = headers.get(b"content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                return ApiError(415, f"a POST must have 'Content-Type: application/json' (got "
                                     f"{headers.get(b'content-type', 'none')[:100]!r}); OpenAI's clients send it",
                                code="unsupported_media_type")
        return None
