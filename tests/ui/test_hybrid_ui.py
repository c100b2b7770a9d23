"""The chat app with a cloud fallback: Settings → policy, URL, model, redaction; each answer says who gave it.
The "cloud" is a real `edge-sdk serve` of another model on loopback; its request log shows what left the app."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.ui
pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_bundle

    from tests.server.conftest import Served

    root = tmp_path_factory.mktemp("cloud")
    bundle = make_tiny_bundle(root / "bundle", "llama", max_context=1024, seed=1)
    server = Served(bundle, "--model-name", "big", log=root / "requests.jsonl")
    yield server, bundle
    assert server.stop() in (0, -15)


def test_the_fallback_answers_when_the_device_is_unsure_and_personal_data_stays(tiny_bundle, cloud, run_scenario,
                                                                                tmp_path):
    import edge_sdk

    server, big = cloud
    res = run_scenario("scenario_hybrid.py", UI_BUNDLE=tiny_bundle, UI_FALLBACK=server.url + "/v1",
                       UI_FALLBACK_MODEL="big", UI_SCREENSHOT=tmp_path / "hybrid.png", timeout=400)
    assert res["defaults"] == {"policy": "local-only", "url": "", "url_disabled": True}
    assert res["local"]["bubble"]["route"] == "" and res["local"]["route"] is None  # no router at all
    assert "needs a fallback URL" in res["bad"]["banner"] and res["bad"]["policy"] == "local-only"
    assert res["clipped_labels"] == [] and "on-device · big if unsure" in res["header"]

    sent = [r["body"] for r in server.requests_logged()]
    auto = res["auto"]
    # The cloud's answer, computed here from its model: the bubble and the session's history both hold it.
    cloud_model = edge_sdk.load(big, threads=1)
    want = cloud_model.generate(sent[0]["messages"], max_new_tokens=8)
    assert auto["bubble"]["text"] == want == auto["history"][-1]["content"]
    assert auto["route"]["target"] == "cloud" and auto["route"]["reason"] == "low_confidence"
    assert auto["bubble"]["route"].startswith("answered by big") and "unsure here" in auto["bubble"]["route"]
    assert any(s.startswith("Asking big") for s in auto["statuses"]), auto["statuses"]
    assert "answered by big in" in auto["statuses"][-1]
    # What was sent: the conversation so far (the local turn included), nothing else.
    assert sent[0]["messages"][-1] == {"role": "user", "content": "tell me about the sky"}
    assert sent[0]["model"] == "big" and sent[0]["max_tokens"] == 8

    personal = res["personal"]
    assert personal["route"]["reason"] == "personal_data" and personal["route"]["target"] == "device"
    assert personal["bubble"]["route"].startswith("on device  ·  personal data kept here")
    assert res["reopened"] == {"policy": "auto", "url": server.url + "/v1", "url_disabled": False}

    redacted = res["redacted"]
    # The address and the number; the tiny random model's earlier replies may hold digit runs that the gate
    # counts as phone numbers too (any 7-15 digits: docs/server.md, "The privacy gate").
    n = redacted["route"]["redacted"]
    assert redacted["route"]["target"] == "cloud" and n >= 2
    assert f"{n} personal items sent as placeholders" in redacted["bubble"]["route"]
    assert len(sent) == 2  # the personal-data turn never left the device...
    last = " ".join(m["content"] for m in sent[1]["messages"])
    assert "jane.doe@example.com" not in last and "7946" not in last and "[EMAIL_1]" in last  # ...and now as placeholders
    assert res["captions_on_screen"] and all(c.startswith(("answered by big", "on device")) for c in res["captions_on_screen"])

    back = res["back_local"]
    assert back["bubble"]["route"] == "" and back["route"] is None
    assert len(server.requests_logged()) == 2
