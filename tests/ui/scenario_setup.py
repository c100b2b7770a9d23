"""Scenario: first start without a model, a wrong folder, then the right one, then settings.

Env: UI_GOOD_BUNDLE (a bundle folder), UI_BAD_BUNDLE (a folder that is not a bundle). Run with
an empty cwd and HOME so that no default bundle is found.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import UI, emit, press, run  # noqa: E402


def main():
    from mobile_demo.bundle_paths import find_default_bundle

    res = {}
    found = find_default_bundle()
    ui = UI(bundle_path=str(found) if found else None)  # what `python -m mobile_demo` does
    app = ui.app
    ui.pump(timeout=0.5)
    res["start"] = {"found": str(found) if found else None, "screen": app.root.current,
                    "title": app.setup_title, "text": app.setup_text}

    setup = ui.ids("setup")
    setup.setup_path.text = os.environ["UI_BAD_BUNDLE"]
    press(setup.open_button)
    ui.pump(lambda: app.root.current == "setup" and "can't" in app.setup_title, 30)
    res["bad"] = {"screen": app.root.current, "title": app.setup_title, "text": app.setup_text,
                  "model_ready": app.model_ready}

    setup.setup_path.text = os.environ["UI_GOOD_BUNDLE"]
    press(setup.open_button)
    ui.pump(lambda: app.model_ready, 60)
    res["good"] = {"screen": app.root.current, "model_ready": app.model_ready,
                   "model_name": app.model_name, "status": app.status_text}

    # Settings: a system prompt starts a new chat that carries it; sampling values are kept.
    from kivy.core.window import Window
    from mobile_demo.widgets import ChatSettings

    def panel_open():
        return any(isinstance(w, ChatSettings) for w in Window.children)

    # Wait on the state, not a fixed time: the panel's open/dismiss animations run slower on a loaded machine.
    press(ui.ids().settings_button)
    ui.pump(panel_open, 10)
    panel = next(w for w in Window.children if isinstance(w, ChatSettings))
    app.seed = 1  # a sampled turn below: seeded, so every run of this scenario sees the same reply
    panel.ids.temperature.value = 0.7
    panel.ids.max_tokens.value = 32
    panel.ids.system.text = "You are terse."
    press(panel.ids.apply_button)
    ui.pump(lambda: not panel_open(), 10)
    res["settings"] = {"temperature": app.temperature, "max_new_tokens": app.max_new_tokens,
                       "system_prompt": app.system_prompt,
                       "chat_history": [dict(m) for m in app.chat.messages],
                       "panel_open": panel_open()}

    ui.type_and_send("hello there")
    ui.wait_idle(60)
    ui.pump(timeout=0.2)
    res["sampled_turn"] = {"bubbles": ui.bubbles(), "new_tokens": app.chat.last_stats.new_tokens,
                           "status": app.status_text}
    ui.close()
    emit(res)


if __name__ == "__main__":
    run(main)
