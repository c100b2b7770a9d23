"""The routing decision over its whole table: policy x the caller's route x fits x personal data x confidence x
how the fallback answered.

The expected routes are written down from docs/server.md ("Hybrid routing": the policy table, the privacy gate,
"never hang", the list of reasons), as an ordered table whose first matching row wins, not derived from the code.
A driver loop (as the server, Router.generate and Router.stream_chat run it) plays each case to its end.
"""
from __future__ import annotations

import itertools

import pytest

from edge_sdk.runtime.hybrid import Policy, RouteRequest, decide

POLICY = ("local-only", "auto", "cloud-first")
CALLER = (None, "device", "cloud")
FITS = (True, False)
# personal data: none; found and the caller consents; found and the policy redacts; found, neither
PII = ("none", "consent", "redact", "private")
CONFIDENCE = ("high", "low")
CLOUD = ("ok", "failed", "busy")
ANY = "*"

# (policy, caller, fits, pii, confidence, cloud) -> (steps the driver takes, target, reason, degraded, error)
# Read top to bottom; the first row that matches decides.
TABLE = [
    # local-only: nothing ever leaves the device.
    (("local-only", ANY, ANY, ANY, ANY, ANY), (("device",), "device", "local-only", False, None)),
    # "route": "device" keeps any request on the device (cloud-first: "the device does ... or route device").
    ((ANY, "device", ANY, ANY, ANY, ANY), (("device",), "device", "caller", False, None)),
    # Too long for the device: the fallback is asked, if the privacy gate lets the prompt go; else refused (400).
    ((ANY, ANY, False, "private", ANY, ANY), ((), "refuse", "personal_data", False, "context_length_exceeded")),
    ((ANY, ANY, False, ANY, ANY, "ok"), (("cloud",), "cloud", "context", False, None)),
    ((ANY, ANY, False, ANY, ANY, "failed"),
     (("cloud",), "refuse", "fallback_failed", False, "context_length_exceeded")),
    ((ANY, ANY, False, ANY, ANY, "busy"), (("cloud",), "refuse", "fallback_failed", False, "server_busy")),
    # "route": "cloud": the fallback answers (if the data may go); a failed fallback -> the device, degraded.
    ((ANY, "cloud", True, "private", ANY, ANY), (("device",), "device", "personal_data", False, None)),
    ((ANY, "cloud", True, ANY, ANY, "ok"), (("cloud",), "cloud", "caller", False, None)),
    ((ANY, "cloud", True, ANY, ANY, ANY), (("cloud", "device"), "device", "fallback_failed", True, None)),
    # cloud-first: the fallback answers; the device does if it fails.
    (("cloud-first", None, True, "private", ANY, ANY), (("device",), "device", "personal_data", False, None)),
    (("cloud-first", None, True, ANY, ANY, "ok"), (("cloud",), "cloud", "cloud-first", False, None)),
    (("cloud-first", None, True, ANY, ANY, ANY), (("cloud", "device"), "device", "fallback_failed", True, None)),
    # auto: the device answers; below the threshold the fallback is asked, if the data may go.
    (("auto", None, True, ANY, "high", ANY), (("judge",), "device", "confident", False, None)),
    (("auto", None, True, "private", "low", ANY), (("judge",), "device", "personal_data", False, None)),
    (("auto", None, True, ANY, "low", "ok"), (("judge", "cloud"), "cloud", "low_confidence", False, None)),
    (("auto", None, True, ANY, "low", ANY), (("judge", "cloud"), "device", "low_confidence", True, None)),
]
THRESHOLD = 0.65
SCORE = {"high": 0.9, "low": 0.3}
FOUND = 2  # personal data items in the request, when it has any


def expected(case):
    for pattern, outcome in TABLE:
        if all(p == ANY or p == c for p, c in zip(pattern, case)):
            return outcome
    raise AssertionError(f"no row of the table covers {case}")


def play(policy, caller, fits, pii, confidence, cloud):
    """Run the decision as a driver does; (steps, final route)."""
    p = Policy(policy, THRESHOLD, redact=pii == "redact")
    request = RouteRequest("chat", [{"role": "user", "content": "hi"}], route=caller, fits=fits,
                           allow_cloud_pii=pii == "consent")
    found = 0 if pii == "none" else FOUND
    steps, score, outcome = [], None, None
    route = decide(p, request, found)
    while route.next:
        assert len(steps) < 4, f"the decision does not settle: {steps}"
        steps.append(route.next)
        if route.next == "cloud":
            outcome = cloud
        else:
            score = SCORE[confidence]
        route = decide(p, request, found, score, outcome)
    return tuple(steps), route


CASES = list(itertools.product(POLICY, CALLER, FITS, PII, CONFIDENCE, CLOUD))


def check(case) -> str | None:
    """What is wrong with the route of `case`, or None."""
    steps, route = play(*case)
    want_steps, target, reason, degraded, error = expected(case)
    got = (steps, route.target, route.reason, route.degraded, route.error)
    if got != (want_steps, target, reason, degraded, error):
        return f"got {got}, the docs say {(want_steps, target, reason, degraded, error)}"
    public = route.public()
    # The fallback only ever sees personal data redacted or with consent, and the route says how many were hidden.
    if (public.get("redacted") == FOUND) != (route.target == "cloud" and case[3] == "redact"):
        return f"redacted is wrong in {public}"
    if "cloud" in steps and case[3] == "private":
        return "personal data went to the fallback without consent or redaction"
    # The confidence is in the route exactly when the device answer was judged by it.
    if ("confidence" in public) != ("judge" in steps) or public.get("confidence", SCORE[case[4]]) != SCORE[case[4]]:
        return f"confidence is wrong in {public}"
    return None


def test_every_case_routes_as_the_docs_say():
    wrong = {case: why for case in CASES if (why := check(case))}
    assert len(CASES) == 3 * 3 * 2 * 4 * 2 * 3
    assert not wrong, f"{len(wrong)} of {len(CASES)} cases, e.g.:\n" + "\n".join(
        f"{case}: {why}" for case, why in list(wrong.items())[:10])


def test_the_table_has_no_dead_rows():
    used = {next(i for i, (p, _) in enumerate(TABLE) if all(x == ANY or x == c for x, c in zip(p, case)))
            for case in CASES}
    assert used == set(range(len(TABLE)))


@pytest.mark.parametrize("consent", ["false", "true", 1, "yes", [True]])
def test_only_true_is_consent(consent):
    """allow_cloud_pii must be exactly True: a string such as "false" (truthy) is no consent."""
    request = RouteRequest("chat", [], route="cloud", allow_cloud_pii=consent)
    route = decide(Policy("auto"), request, found=1)
    assert (route.target, route.reason) == ("device", "personal_data")
    assert decide(Policy("auto"), RouteRequest("chat", [], route="cloud", allow_cloud_pii=True), 1).target == "cloud"


def test_the_threshold_is_inclusive_and_the_driver_side_confidence_fills_in():
    request = RouteRequest("chat", [])
    assert decide(Policy("auto", 0.5), request, 0, device=0.5).reason == "confident"
    assert decide(Policy("auto", 0.5), request, 0, device=0.4999).next == "cloud"
    local = decide(Policy("local-only"), request, 0, device=0.7)
    assert local.public(confidence=0.7) == {"target": "device", "reason": "local-only", "confidence": 0.7}
    cloud = decide(Policy("cloud-first"), request, 0, cloud="ok")
    assert cloud.public(confidence=0.7) == {"target": "cloud", "reason": "cloud-first"}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="policy must be one of"):
        Policy("sometimes")
    with pytest.raises(ValueError, match="cloud must be one of"):
        decide(Policy("auto"), RouteRequest("chat", []), 0, cloud="maybe")
