"""Hybrid edge/cloud routing: the device answers first, a bigger model when needed and policy allows.

    from edge_sdk.runtime.hybrid import Router
    router = Router("auto", fallback_url="https://host/v1", fallback_model="big", redact=True)
    answer = router.generate(model, [{"role": "user", "content": "..."}], max_new_tokens=128)
    answer.text, answer.route    # route: {"target": "device"|"cloud", "reason": ..., "confidence": ...}
    for event in router.stream_chat(model.chat(), "..."):   # a chat turn that streams (the chat app)
        ...                      # Event("text"|"asking"|"replace"|"route", text, route)

decision.py    the policy as one pure function: decide(policy, request, found, device, cloud) -> Route
router.py      the Router: policy, gate and fallback; drives the decision for Python callers
request.py     a request as the router sees it: its facts, the texts the gate reads, the fallback's body
pii.py         the privacy gate: e-mail, phone, card (Luhn), IBAN (registry + mod-97) on normalised text
normalize.py   the text the gate reads: lookalikes folded, invisible characters dropped, positions kept
redact.py      personal data out as placeholders, back in the reply
confidence.py  the device answer's confidence, from the logits it computed anyway
client.py      the fallback: any OpenAI-compatible endpoint, with a deadline, retries, no redirects
calls.py       fallback calls bounded (threads of their own, a bounded queue) and counted for /health

Nothing here imports the server: the server drives the decision with `inspect`, `decide` and
`fallback_async`, and maps a refusal to its HTTP error.
"""
from __future__ import annotations

from .calls import FallbackBusy
from .client import FallbackClient, FallbackError
from .confidence import Confidence
from .decision import DEFAULT_THRESHOLD, POLICIES, Policy, Route, decide
from .pii import Findings, find_pii, scan
from .redact import Redactor
from .request import Reply, RouteRequest
from .router import Answer, Event, Router

__all__ = ["Router", "Answer", "Event", "POLICIES", "DEFAULT_THRESHOLD", "Confidence", "FallbackClient",
           "FallbackError", "FallbackBusy", "Redactor", "find_pii", "scan", "Findings", "Policy", "Route", "decide",
           "RouteRequest", "Reply"]
