"""Scenario: a whole conversation on a real bundle, as a user would have it.

Env: UI_BUNDLE (bundle folder), UI_SCREENSHOT (optional PNG path), UI_MAX_NEW_TOKENS.
Prints ``RESULT {json}`` with what was seen; test_chat_flow.py asserts on it.

Steps: wait for the model; ask a question and watch the reply stream into the last bubble while
counting frames; ask for something long and press Stop after a few words; ask a follow-up (the
KV cache must be reused); screenshot; overflow the context and take the "Start a new chat" way out.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import UI, emit, press, run  # noqa: E402

FORBIDDEN = ("torch", "transformers", "tokenizers", "sentencepiece", "accelerate", "gguf", "onnx")


def stats_dict(stats):
    keys = ("prompt_tokens", "prefilled_tokens", "new_tokens", "ttft_s", "decode_tok_s", "stop_reason")
    return {k: getattr(stats, k, None) for k in keys}


def run_turn(ui, text, *, stop_after_chars=None, shot=None, timeout=120.0):
    """Send ``text``; return what the user saw while the reply streamed."""
    app = ui.app
    ids = ui.ids()
    used_before = app.chat.tokens_used
    n_before = len(app.messages)
    ui.type_and_send(text)
    sent_at = time.perf_counter()
    out = {"button_while_generating": ids.send_button.text,
           "bubbles_added": len(app.messages) - n_before,
           "input_cleared": ids.prompt.text == ""}

    def reply():
        return app.messages[-1]["text"] if app.messages else ""

    # First visible text.
    ui.pump(lambda: reply() or not app.generating, timeout)
    out["first_text_s"] = time.perf_counter() - sent_at
    frames0, ticks0, t0 = ui.frames, ui.ticks, time.perf_counter()
    updates = 0
    last_seen = reply()
    statuses = set()
    stop_pressed_at = None
    deadline = sent_at + timeout
    drawn_between = 0  # bubble updates with at least one frame drawn since the previous update
    frames_at_update = ui.frames
    while app.generating and time.perf_counter() < deadline:
        ui.pump(timeout=0.02)
        if reply() != last_seen:
            updates += 1
            drawn_between += ui.frames > frames_at_update
            frames_at_update = ui.frames
            last_seen = reply()
        statuses.add(app.status_text)
        if shot and "screenshot" not in out and len(reply()) >= shot[1]:
            out["screenshot"] = ui.screenshot(shot[0])  # mid-stream: Stop button and live status
        if stop_after_chars is not None and stop_pressed_at is None and len(reply()) >= stop_after_chars:
            out["button_pressed"] = ids.send_button.text
            out["chars_at_stop"] = len(reply())
            out["tokens_at_stop"] = app.chat.last_stats.new_tokens
            press(ids.send_button)
            stop_pressed_at = time.perf_counter()
    gen_s = max(time.perf_counter() - t0, 1e-6)
    if stop_pressed_at is not None:
        out["stop_to_idle_s"] = time.perf_counter() - stop_pressed_at
    ui.pump(timeout=0.2)  # let the final flush and status land
    result = app.last_result
    out.update(
        finished=not app.generating,
        generating_s=gen_s,
        frames_per_s=(ui.frames - frames0) / gen_s,
        ticks_per_s=(ui.ticks - ticks0) / gen_s,
        bubble_updates=updates,
        updates_with_a_frame=drawn_between,
        live_statuses=sorted(s for s in statuses if "tok/s" in s)[:3],
        reply=reply(),
        reply_in_history=(app.chat.messages[-1]["content"] if app.chat.messages else None),
        status=app.status_text,
        button_after=ids.send_button.text,
        used_before=used_before,
        used_after=app.chat.tokens_used,
        stats=stats_dict(app.chat.last_stats),
        cancelled=getattr(result, "cancelled", None),
        stop_latency_s=getattr(result, "stop_latency_s", None),
    )
    return out


def main():
    bundle = os.environ["UI_BUNDLE"]
    max_new = int(os.environ.get("UI_MAX_NEW_TOKENS", "48"))
    ui = UI(bundle_path=bundle)
    res = {"ready": ui.wait_ready(120), "screen": ui.app.root.current}
    app = ui.app
    app.max_new_tokens = max_new
    res["max_context"] = app.model.max_context
    res["status_at_start"] = app.status_text
    header = ui.ids().header
    res["header"] = {"name": app.model_name,
                     "lines": ["".join(w.text for w in line.words) for line in header._label._cached_lines]}

    res["turn1"] = run_turn(ui, os.environ.get("UI_PROMPT1", "What is the capital of France?"))
    app.max_new_tokens = 256
    res["turn2"] = run_turn(ui, os.environ.get("UI_PROMPT2", "Write a long story about a robot who learns to paint."),
                            stop_after_chars=int(os.environ.get("UI_STOP_AFTER_CHARS", "40")))
    app.max_new_tokens = max_new
    shot = os.environ.get("UI_SCREENSHOT")
    at_chars = int(os.environ.get("UI_SCREENSHOT_AT_CHARS", "0"))
    res["turn3"] = run_turn(ui, os.environ.get("UI_PROMPT3", "Thanks! And the capital of Germany?"),
                            shot=(shot, at_chars) if shot and at_chars else None)
    res["bubbles"] = ui.bubbles()
    if shot:
        res["screenshot"] = res["turn3"].get("screenshot") or ui.screenshot(shot)

    # Overflow the context in one message: the app must explain it and offer a new chat.
    flood = "tell me more " * (app.model.max_context // 2)
    ui.type_and_send(flood)
    ui.pump(lambda: not app.generating and app.banner_text, 60)
    ids = ui.ids()
    res["overflow"] = {"banner": app.banner_text, "action": app.banner_action,
                       "button_text": ids.banner_button.text, "button_disabled": ids.banner_button.disabled,
                       "last_bubble_role": app.messages[-1]["role"], "generating": app.generating}
    press(ids.banner_button)
    ui.pump(lambda: not app.messages and not app.banner_text, 10)  # a state, not a fixed delay: CI is loaded
    res["after_new_chat"] = {"bubbles": len(app.messages), "banner": app.banner_text,
                             "tokens_used": app.chat.tokens_used, "history": len(app.chat.messages)}

    res["forbidden_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    ui.close()
    emit(res)


if __name__ == "__main__":
    run(main)
