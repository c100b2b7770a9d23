"""`edge-sdk serve --learn DIR` end to end: a real server escalates to a real fallback server, and the teacher log
holds the redacted exchanges with their route reason and the device's confidence."""
from __future__ import annotations

from edge_sdk.runtime.hybrid import read_log

from .test_hybrid import _ask, big_bundle, cloud  # noqa: F401 - the fallback's fixtures

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"


def test_serve_learn_logs_what_the_fallback_answered_redacted(serve, tiny_bundle, cloud, tmp_path):  # noqa: F811
    learn = tmp_path / "teacher"
    device = serve(tiny_bundle, "--fallback", cloud.url + "/v1", "--fallback-model", "big", "--policy", "auto",
                   "--confidence-threshold", "1.01", "--redact", "--learn", str(learn))  # every answer is doubtful
    code, body, _ = _ask(device, f"write to {EMAIL} or call {PHONE} about the sea")
    assert code == 200 and body["route"]["target"] == "cloud" and body["route"]["redacted"] == 2
    code, plain, _ = _ask(device, "the sea is blue", route="device")  # kept on the device: nothing to learn
    assert plain["route"]["target"] == "device"
    records = list(read_log(learn))
    raw = b"".join(p.read_bytes() for p in learn.glob("teacher-*.jsonl"))
    assert EMAIL.encode() not in raw and b"7946" not in raw
    [record] = records
    assert record["messages"] == [{"role": "user", "content": "write to [EMAIL_1] or call [PHONE_1] about the sea"}]
    assert record["reason"] == "low_confidence" and 0 <= record["confidence"] < 1.01
    assert record["confidence"] == body["route"]["confidence"] and record["model"] == "big"
    assert record["answer"] == body["choices"][0]["message"]["content"]  # (the random teacher repeats no data)
