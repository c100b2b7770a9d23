"""Hybrid edge/cloud routing: the device answers first, a bigger model when needed and policy allows.

    from edge_sdk.runtime.hybrid import Router
    router = Router("auto", fallback_url="https://host/v1", fallback_model="big", redact=True)
    answer = router.generate(model, [{"role": "user", "content": "..."}], max_new_tokens=128)
    answer.text, answer.route    # route: {"target": "device"|"cloud", "reason": ..., "confidence": ...}
    for event in router.stream_chat(model.chat(), "..."):   # a chat turn that streams (the chat app)
        ...                      # Event("text"|"asking"|"replace"|"route", text, route)

router.py      policies (local-only, auto, cloud-first), the privacy gate, degraded answers
confidence.py  the device answer's confidence, from the logits it computed anyway
pii.py         personal data found (e-mail, phone, card with Luhn, IBAN with mod-97), redacted, restored
client.py      the fallback: any OpenAI-compatible endpoint, with timeouts, retries and backoff
"""
from __future__ import annotations

from .client import FallbackClient, FallbackError
from .confidence import Confidence
from .pii import Redactor, find_pii
from .router import DEFAULT_THRESHOLD, POLICIES, Answer, Event, Router

__all__ = ["Router", "Answer", "Event", "POLICIES", "DEFAULT_THRESHOLD", "Confidence", "FallbackClient", "FallbackError",
           "Redactor", "find_pii"]
