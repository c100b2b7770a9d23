"""Where the teacher's answers come from when there is no log: an OpenAI-compatible server (`--teacher URL`),
or the bundle itself under a long system prompt (prompt baking: the device runtime, greedy)."""
from __future__ import annotations

import sys
import time
from typing import Callable

from ...errors import DistillError
from .data import Example


def ask_server(url: str, conversations, *, model: str | None = None, api_key: str | None = None,
               max_tokens: int = 256, timeout: float = 60.0, log: Callable[[str], None] | None = None) -> list[Example]:
    """Each conversation sent to `url`'s /chat/completions (greedy), the replies as examples. The client is the
    hybrid router's (bounded reply size, a deadline per call, retries, no redirects followed)."""
    from ...runtime.hybrid.client import FallbackClient, FallbackError

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        client = FallbackClient(url, model=model, api_key=api_key, timeout=timeout)
    except ValueError as e:
        raise DistillError(f"--teacher: {e}") from None
    out = []
    start = time.monotonic()
    for i, conv in enumerate(conversations, 1):
        body = {"messages": [{"role": r, "content": c} for r, c in conv], "temperature": 0, "max_tokens": max_tokens}
        if model:
            body["model"] = model
        try:
            reply = client.complete("chat/completions", body)
            text = reply["choices"][0]["message"]["content"]
        except FallbackError as e:
            raise DistillError(f"the teacher at {url} did not answer prompt {i}: {e}") from None
        except (KeyError, IndexError, TypeError) as e:
            raise DistillError(f"the teacher at {url} sent a reply that is not a chat completion (prompt {i}: "
                               f"missing {e})") from None
        if isinstance(text, str) and text.strip():
            out.append(Example(tuple(conv), text))
        if i % 10 == 0 or i == len(conversations):
            log(f"distill: teacher answered {i}/{len(conversations)} prompts ({time.monotonic() - start:.0f}s)")
    return out


def ask_bundle(device_model, system: str, conversations, *, max_new_tokens: int = 128,
               log: Callable[[str], None] | None = None) -> list[Example]:
    """Prompt baking's teacher: the bundle answering each conversation greedily *with* the system prompt. The
    example keeps the conversation without it: the student learns to answer so with nothing said."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = []
    start = time.monotonic()
    for i, conv in enumerate(conversations, 1):
        messages = [{"role": "system", "content": system}] + [{"role": r, "content": c} for r, c in conv]
        text = device_model.generate(messages, max_new_tokens=max_new_tokens, temperature=0.0, adapter=None)
        if str(text).strip():
            out.append(Example(tuple(conv), str(text)))
        if i % 10 == 0 or i == len(conversations):
            log(f"distill: the long-prompt teacher answered {i}/{len(conversations)} ({time.monotonic() - start:.0f}s)")
    return out
