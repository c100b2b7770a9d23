"""Scenario: the app runs version 1 from a store, shows it, pulls version 2 from Settings while staying usable,
switches to it, then an update that fails its smoke prompt leaves version 2 in place.

Env: UI_BUNDLE (the store's active version 1 folder), UI_PUBLISH (a command file: the test publishes the broken
version 3 once it sees UI_STEP=broken written there).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import UI, emit, press, run  # noqa: E402


def main():
    import importlib

    from kivy.core.window import Window

    package = os.environ.get("UI_APP_MODULE", "mobile_demo.app").rsplit(".", 1)[0]
    ChatSettings = importlib.import_module(f"{package}.widgets").ChatSettings

    res = {}
    ui = UI(bundle_path=os.environ["UI_BUNDLE"])
    app = ui.app
    ui.wait_ready()
    res["start"] = {"model_name": app.model_name, "update_url": app.update_url, "update_name": app.update_name}

    def panel():
        return next((w for w in Window.children if isinstance(w, ChatSettings)), None)

    press(ui.ids().settings_button)
    ui.pump(lambda: panel() is not None, 10)
    p = panel()
    res["fields"] = {"url": p.ids.update_url.text, "name": p.ids.update_name.text}
    import time

    t0 = time.perf_counter()
    press(p.ids.update_button)  # pulls the latest (2) on a worker thread; the server takes 3 s per file
    banners, beats = set(), [t0]

    def updated():
        beats.append(time.perf_counter())  # one main-loop iteration
        banners.add(app.banner_text)
        return app.model_name.endswith(" · 2") and app.model_ready

    ui.pump(updated, 120)
    res["updated"] = {"model_name": app.model_name, "bundle_path": app.bundle_path, "model_ready": app.model_ready,
                      "banners": sorted(b for b in banners if b),
                      "seconds": beats[-1] - t0, "longest_stall": max(b - a for a, b in zip(beats, beats[1:]))}
    ui.type_and_send("Hello")
    ui.wait_idle()
    res["reply"] = ui.bubbles()[-1]["text"]

    Path(os.environ["UI_PUBLISH"]).write_text("broken")  # the test publishes version 3 (fails its smoke prompt)
    ui.pump(lambda: Path(os.environ["UI_PUBLISH"]).read_text() == "published", 60)
    app.pull_update(app.update_url, app.update_name)
    ui.pump(lambda: not app.updating, 120)
    ui.pump(timeout=0.3)
    res["failed"] = {"banner": app.banner_text, "model_name": app.model_name, "bundle_path": app.bundle_path,
                     "model_ready": app.model_ready}
    emit(res)


if __name__ == "__main__":
    run(main)
