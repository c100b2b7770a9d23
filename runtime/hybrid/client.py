"""A small client for the fallback endpoint: any server speaking the OpenAI HTTP API (vLLM, TGI,
llama-server, a cloud API, another `edge-sdk serve`). Standard library only: it runs on a phone.

Bounded: each attempt has a timeout, failures that may pass (connection refused, 429, 5xx, timeouts)
are retried with exponential backoff a few times, and anything else fails at once.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class FallbackError(Exception):
    """The fallback could not answer (unreachable, too slow, or an error reply)."""


class FallbackClient:
    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, retries: int = 2, backoff: float = 0.5):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the fallback URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def complete(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `<base_url>/<path>` (e.g. "chat/completions"); the decoded JSON reply."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(f"{self.base_url}/{path}", data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310 - the user's URL
                    return json.loads(resp.read(16 << 20))
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read(2000).decode('utf-8', 'replace')[:300]}"
                if e.code != 429 and e.code < 500:
                    break  # the request itself is wrong: repeating it will not help
            except (urllib.error.URLError, TimeoutError, OSError, ValueError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        raise FallbackError(f"the fallback at {self.base_url} did not answer ({last})")
