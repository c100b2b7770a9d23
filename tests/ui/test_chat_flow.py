"""A conversation driven through the widgets, on real bundles (tiny random, and SmolLM2 for e2e)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.ui


def _check_turn_shape(turn):
    """What every turn must look like, whatever the model says."""
    assert turn["bubbles_added"] == 2           # the user's bubble and the reply's
    assert turn["input_cleared"]
    assert turn["button_while_generating"] == "Stop"
    assert turn["finished"] and turn["button_after"] == "Send"
    assert turn["reply"]
    # The bubble shows exactly what the session keeps in its history.
    assert turn["reply"] == turn["reply_in_history"]
    assert "tok/s" in turn["status"] and "context" in turn["status"]


def _check_overflow(res):
    over = res["overflow"]  # a message larger than the context: explained, with a way out
    assert "filled the model's memory" in over["banner"]
    assert over["action"] == "new_chat" and not over["button_disabled"]
    assert over["last_bubble_role"] == "user" and not over["generating"]
    after = res["after_new_chat"]
    assert after["bubbles"] == 0 and after["banner"] == "" and after["history"] == 0


def test_chat_with_tiny_bundle(tiny_bundle, run_scenario):
    res = run_scenario("scenario_chat.py", UI_BUNDLE=tiny_bundle, UI_MAX_NEW_TOKENS=24)
    assert res["ready"] and res["screen"] == "chat"
    turn1 = res["turn1"]
    _check_turn_shape(turn1)
    assert turn1["used_after"] > turn1["used_before"]
    assert turn1["stats"]["new_tokens"] == 24 and turn1["stats"]["stop_reason"] == "length"
    _check_overflow(res)
    assert not [m for m in res["forbidden_modules"] if m.split(".")[0] in ("torch", "transformers")]


@pytest.mark.e2e
def test_chat_with_smollm2(smollm2_bundle, run_scenario, tmp_path):
    shot = tmp_path / "chat.png"
    # A first question with a longer answer than "The capital of France is Paris." (7 tokens, ~70 ms):
    # streaming is only visible in a reply that lasts longer than a few 30 Hz batches.
    res = run_scenario("scenario_chat.py", timeout=400, UI_BUNDLE=smollm2_bundle, UI_SCREENSHOT=shot,
                       UI_MAX_NEW_TOKENS=48, UI_PROMPT1="Tell me about the sea in three sentences.")
    assert res["ready"] and res["screen"] == "chat"

    turn1 = res["turn1"]
    _check_turn_shape(turn1)
    # (What the model answers is checked by the runtime's e2e tests; here: that it is shown.)
    # Tokens arrive as a stream (several bubble updates), and the UI keeps drawing meanwhile.
    # States, not rates (a loaded CI box has any speed): the reply arrives in several updates, and the
    # window drew a frame between (nearly) every two of them. A UI blocked by decoding would draw none
    # until the reply was complete.
    assert turn1["bubble_updates"] >= 3
    assert turn1["updates_with_a_frame"] >= turn1["bubble_updates"] - 1, turn1
    assert turn1["live_statuses"], "the status line showed no live tok/s while generating"

    turn2 = res["turn2"]  # Stop pressed after a few words of a long answer
    assert turn2["button_pressed"] == "Stop"
    # Stop ends generation before the next token: at most the token being decoded when it was pressed.
    assert turn2["stats"]["new_tokens"] - turn2["tokens_at_stop"] <= 1, turn2
    assert turn2["cancelled"] and turn2["stats"]["stop_reason"] == "cancelled"
    assert turn2["stats"]["new_tokens"] < 256
    assert turn2["reply"] and turn2["reply"] == turn2["reply_in_history"]  # the partial reply stays
    assert "stopped" in turn2["status"]

    turn3 = res["turn3"]  # a follow-up reuses the KV cache: the previous prompt is not run again
    _check_turn_shape(turn3)
    assert turn3["used_after"] > turn3["used_before"]
    assert turn3["stats"]["prompt_tokens"] > turn3["used_before"]   # the whole conversation...
    # ...of which the turn-2 prompt came from the cache, and so did turn 2's stopped reply: the app ran it as
    # a prompt pass (chat.settle) after it stopped. Only the new message and its template were run.
    # (Without it, exactly prompt3 - prompt2 tokens ran: the reply, then the message.)
    after_turn2 = turn3["stats"]["prompt_tokens"] - turn2["stats"]["prompt_tokens"]
    assert 0 < turn3["stats"]["prefilled_tokens"] < after_turn2 - turn2["stats"]["new_tokens"] // 2, (turn2, turn3)
    assert res["header"]["lines"] == [res["header"]["name"]] == ["smollm2-135m-instruct"]  # the whole name, one line

    assert [b["role"] for b in res["bubbles"]] == ["user", "assistant"] * 3
    png = Path(res["screenshot"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _check_overflow(res)
    assert not [m for m in res["forbidden_modules"] if m.split(".")[0] in ("torch", "transformers")]
