"""First start without a model, a folder that is not a bundle, then a real one; settings."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.ui


def test_no_bundle_then_bad_then_good_bundle(tiny_bundle, run_scenario, tmp_path):
    home, cwd, not_a_bundle = tmp_path / "home", tmp_path / "cwd", tmp_path / "not_a_bundle"
    for d in (home, cwd, not_a_bundle):
        d.mkdir()
    res = run_scenario("scenario_setup.py", cwd=cwd, HOME=home,
                       UI_GOOD_BUNDLE=tiny_bundle, UI_BAD_BUNDLE=not_a_bundle)

    start = res["start"]  # nothing exported yet: explain how to make a bundle
    assert start["found"] is None and start["screen"] == "setup"
    assert start["title"] == "No model bundle found"
    assert "edge-sdk export smollm2-135m-instruct --output bundles/smollm2-135m-instruct" in start["text"]
    assert "~/.cache/edge-sdk/bundles/smollm2-135m-instruct" in start["text"]

    bad = res["bad"]  # the runtime's BundleError message reaches the screen
    assert bad["screen"] == "setup" and not bad["model_ready"]
    assert bad["title"] == "This bundle can't be opened"
    assert "edge_manifest.json" in bad["text"] and "not_a_bundle" in bad["text"]

    good = res["good"]
    assert good["screen"] == "chat" and good["model_ready"]
    # The model's own name from its manifest (not the folder's, which a device build calls "bundle").
    manifest = json.loads((tiny_bundle / "edge_manifest.json").read_text())
    assert good["model_name"] == manifest["name"].removesuffix("-fp32-fused") != manifest["name"]
    assert "tokens of context" in good["status"]

    settings = res["settings"]  # Apply closes the panel; a new system prompt starts a new chat
    assert settings["temperature"] == pytest.approx(0.7)
    assert settings["max_new_tokens"] == 32
    assert settings["chat_history"] == [{"role": "system", "content": "You are terse."}]
    assert not settings["panel_open"]

    turn = res["sampled_turn"]  # the settings are what the next turn uses
    assert [b["role"] for b in turn["bubbles"]] == ["user", "assistant"]
    assert turn["bubbles"][1]["text"]
    assert 0 < turn["new_tokens"] <= 32
    assert "tok/s" in turn["status"]
