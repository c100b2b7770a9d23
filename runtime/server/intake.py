"""Taking a request in without letting it stall the server: what one request may cost is bounded before the
work is done, and the work runs off the event loop.

- the body: at most `limit` bytes (413, whether announced by Content-Length or sent chunked), within a
  deadline (408: a body sent a byte at a time cannot hold a connection for ever); both close the connection,
  so the rest of the body is never read; a client that hangs up mid-body leaves one line in the log, not a
  traceback;
- the JSON: strict (NaN and Infinity are not JSON numbers; Python's json reads them), nesting bounded by the
  interpreter's recursion limit (a clear 400, not a RecursionError);
- the prompt: a lower bound on its token count from its size, checked before tokenizing. A token covers at
  most `longest` bytes of text, so a prompt of more than `max_context * longest` bytes cannot fit: it is
  refused without tokenizing megabytes. A normalizer can shrink text before tokenizing (NFC composes a
  Hangul syllable from three jamo: 9 bytes to 3), hence a factor of 4 for tokenizers that have one.

Parsing and tokenizing hold the GIL while they run in C (json, the Rust tokenizer), so a thread alone does
not keep the loop free: the bounds above are what keep each of those pauses short.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.requests import ClientDisconnect

from .protocol import CLOSE, ApiError, ClientGone

log = logging.getLogger("uvicorn.error")  # the server's own log (uvicorn configures and prints it)

BODY_SECONDS = 30.0  # the whole body must arrive within this (a slow phone link still sends 1 MB in 30 s)
MIN_BODY = 256 << 10  # the least body cap when the device model alone answers (see Server.max_body)
NORMALIZER_SHRINK = 4  # how much a tokenizer's normalizer may shrink text (NFC/NFKC at most 3x)


async def read_body(request, limit: int, seconds: float = BODY_SECONDS) -> bytes:
    """The request body, at most `limit` bytes, arrived within `seconds`."""
    too_large = ApiError(413, f"the request body is larger than this server accepts ({_size(limit)})",
                         code="request_too_large", headers=CLOSE)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large  # refused from the headers, before reading
    chunks: list[bytes] = []
    size = 0

    async def read():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a chunked body has no Content-Length: count as it comes
                raise too_large
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), seconds)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {seconds:.0f} s ({size} bytes came); send it "
                            "at once", code="request_timeout", headers=CLOSE) from None
    except ClientDisconnect:
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        log.warning("%s hung up while sending its request body (%d bytes came); request dropped", client, size)
        raise ClientGone() from None
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n} bytes"


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes) -> Any:
    """The body as JSON (RFC 8259: no NaN or Infinity), or a 400 saying what is wrong."""
    try:
        return json.loads(data, parse_constant=_not_a_number)
    except RecursionError:
        raise ApiError(400, "the request body is not valid JSON here: it nests arrays or objects too deeply") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"the request body is not valid JSON ({str(e)[:200]})") from None


def longest_token_bytes(tokenizer) -> int | None:
    """How many bytes of text one token of `tokenizer` covers at most (None if it cannot say)."""
    try:
        longest = max(len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)
                      if tokenizer.id_to_token(i) is not None)
    except (AttributeError, TypeError, ValueError):
        return None
    # The pure pipeline was built and has no normalizer: text reaches the model as sent. Otherwise (a
    # normalizer, or a tokenizer only the fast backend understands) allow for shrinking.
    plain = getattr(tokenizer, "_normalize", "unknown") is None and getattr(tokenizer, "_pre_tokenize", None) is not None
    return longest if plain else longest * NORMALIZER_SHRINK


def prompt_bytes(req) -> int:
    """UTF-8 bytes of the request's text (every message's content, or the raw prompt)."""
    if req.kind == "chat":
        return sum(len(m["content"].encode("utf-8")) for m in req.messages)
    return len(req.prompt.encode("utf-8"))
