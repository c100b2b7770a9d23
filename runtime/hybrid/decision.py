"""The routing policy as one pure function: who answers a request, and what happens next.

    route = decide(policy, request, found)                       # before anything ran
    route = decide(policy, request, found, device=0.58)          # the device answered with that confidence
    route = decide(policy, request, found, device=0.58, cloud="failed")   # and the fallback could not

`decide` reads only its arguments (no I/O, no model), so the whole table is tested directly
(tests/hybrid/test_decision.py) and every driver - the server's async path, `Router.generate`, the chat
app's `Router.stream_chat` - runs the same decision: each calls it, does what `route.next` says, and
calls it again with the outcome until `next` is None.

Policies (docs/server.md):
- local-only: nothing ever leaves the device;
- auto: the device answers; the fallback is asked when the request does not fit the device model, when the
  device answer's confidence is below the threshold, or when the caller asks ("route": "cloud");
- cloud-first: the fallback answers; the device does when the fallback fails.
The caller's "route": "device" always keeps a request on the device. The privacy gate: a request holding
personal data goes to the fallback only with the caller's consent (allow_cloud_pii is exactly True), or
redacted (placeholders) when the policy redacts; otherwise the device answers, and a request the device
cannot take is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POLICIES = ("local-only", "auto", "cloud-first")
# exp(mean log p) below this -> escalate (auto). Calibrated on benchmarks/router_eval.py's capitals set with
# SmolLM2-135M-Instruct int4: see docs/server.md for the table it was chosen from.
DEFAULT_THRESHOLD = 0.65
CLOUD_OUTCOMES = ("ok", "failed", "busy")


@dataclass(frozen=True)
class Policy:
    name: str = "local-only"
    threshold: float = DEFAULT_THRESHOLD
    redact: bool = False  # personal data may go to the fallback as placeholders

    def __post_init__(self):
        if self.name not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.name!r}")


@dataclass(frozen=True)
class Route:
    """Where a request goes. `target`: "device", "cloud" or "refuse" (nobody may answer it). `next`: what the
    driver does now - "device" (answer on the device: the route is final), "judge" (answer on the device,
    then decide again with its confidence), "cloud" (ask the fallback, then decide again with the outcome),
    or None (answer with what was produced)."""

    target: str
    reason: str
    next: str | None = None
    confidence: float | None = None
    degraded: bool = False  # the fallback should have answered and could not
    redacted: int | None = None  # personal data items sent as placeholders (None: nothing redacted)
    error: str | None = None  # refuse: "context_length_exceeded", or "server_busy" (the fallback was full)

    def public(self, confidence: float | None = None) -> dict[str, Any]:
        """The route as answers carry it ({"target", "reason"} and what applies); `confidence`: the device
        answer's, when the driver measured one and the decision did not use it."""
        out: dict[str, Any] = {"target": self.target, "reason": self.reason}
        score = self.confidence if self.confidence is not None else confidence if self.target == "device" else None
        if score is not None:
            out["confidence"] = score
        if self.degraded:
            out["degraded"] = True
        if self.redacted is not None:
            out["redacted"] = self.redacted
        return out


def decide(policy: Policy, request, found: int, device: float | None = None, cloud: str | None = None) -> Route:
    """The route for `request` (its facts: .route, .fits, .allow_cloud_pii) holding `found` items of personal
    data; `device`: the device answer's confidence once it has answered; `cloud`: how asking the fallback
    went ("ok", "failed" or "busy"), once it was asked."""
    if cloud is not None and cloud not in CLOUD_OUTCOMES:
        raise ValueError(f"cloud must be one of {CLOUD_OUTCOMES}, got {cloud!r}")
    ran = device is not None

    def on_device(reason: str, **info) -> Route:
        return Route("device", reason, None if ran else "device", **info)

    if policy.name == "local-only":
        return on_device("local-only")
    if request.route == "device":
        return on_device("caller")
    consent = request.allow_cloud_pii is True  # a string such as "false" is not consent
    may_send = not found or consent or policy.redact
    redacted = found if found and not consent else None

    def ask(reason: str, failed: Route, confidence: float | None = None) -> Route:
        if cloud is None:
            return Route("cloud", reason, "cloud", confidence=confidence, redacted=redacted)
        if cloud == "ok":
            return Route("cloud", reason, confidence=confidence, redacted=redacted)
        return failed

    if not request.fits:  # the device cannot answer at all
        if not may_send:
            return Route("refuse", "personal_data", error="context_length_exceeded")
        busy = "server_busy" if cloud == "busy" else "context_length_exceeded"
        return ask("context", Route("refuse", "fallback_failed", error=busy))
    if request.route == "cloud" or policy.name == "cloud-first":
        if not may_send:
            return on_device("personal_data")
        return ask("caller" if request.route == "cloud" else "cloud-first",
                   on_device("fallback_failed", degraded=True))
    # auto: the device answers first; a doubtful answer goes to the fallback if it may.
    if not ran:
        return Route("device", "confident", "judge")
    if device >= policy.threshold:
        return Route("device", "confident", confidence=device)
    if not may_send:
        return Route("device", "personal_data", confidence=device)
    return ask("low_confidence", Route("device", "low_confidence", confidence=device, degraded=True),
               confidence=device)
