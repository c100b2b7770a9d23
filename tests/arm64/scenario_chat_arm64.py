"""Scenario run by the emulated arm64 device's own Python: the installed chat app, one message, a screenshot.

Env: UI_BUNDLE, UI_DEVICE (profile file), UI_SCREENSHOT, UI_APP_MODULE=edge_sdk.mobile_demo.app.
Prints ``RESULT {json}``: the machine, the bubbles, the status line, the screenshot's path, timings.
"""
from __future__ import annotations

import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ui"))
from harness import UI, emit, run  # noqa: E402


def main():
    t0 = time.perf_counter()
    ui = UI(bundle_path=os.environ["UI_BUNDLE"], device=os.environ.get("UI_DEVICE"))
    ready = ui.wait_ready(timeout=600)
    started_s = time.perf_counter() - t0
    app = ui.app
    if not ready or app.root.current != "chat":
        emit({"error": f"model not ready: screen {app.root.current!r}, {getattr(app, 'setup_text', '')[:300]}"})
        return
    t1 = time.perf_counter()
    ui.type_and_send("Name the capital of France.")
    ui.pump(lambda: app.generating, timeout=30)
    done = ui.wait_idle(timeout=900)
    reply_s = time.perf_counter() - t1
    shot = ui.screenshot(os.environ["UI_SCREENSHOT"])
    emit({"machine": platform.machine(), "app_module": type(app).__module__, "done": done, "model_name": app.model_name,
          "bubbles": ui.bubbles(), "status": app.status_text, "screenshot": shot, "frames": ui.frames,
          "start_s": started_s, "reply_s": reply_s,
          "threads": app.model.engine.session.get_session_options().intra_op_num_threads})
    ui.close()


if __name__ == "__main__":
    run(main)
