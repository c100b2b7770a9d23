"""Scenario: what a new user trips on - text in other scripts, a long first reply, focus, the settings panel,
a bad bundle chosen in settings, and the sampling settings reaching the runtime.

Env: UI_BUNDLE (a working bundle), UI_BAD_BUNDLE (a folder that is not one), UI_SCREENSHOT.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import UI, emit, press, run  # noqa: E402

SCRIPTS = {"emoji": "Party time 🎉😀 ok", "cjk": "東京の天気は？ 서울", "arabic": "مرحبا بالعالم 2026", "hebrew": "שלום עולם"}


def header_lines(ui):
    """What the header draws: the lines of the model's name (Kivy's laid-out text) and the note under it."""
    ids = ui.ids()
    lines = ["".join(w.text for w in line.words) for line in ids.header._label._cached_lines]
    return {"lines": lines, "texture_w": ids.header.texture_size[0], "width": ids.header.width,
            "note": ids.route_note.text}


def label_of(ui, index):
    """The bubble widget showing message `index` (it must be on screen)."""
    rv = ui.ids().messages
    for view in rv.layout_manager.children:
        if getattr(view, "index", None) == index:
            return view.ids.label
    return None


def main():
    from kivy.core.window import Window
    from mobile_demo.widgets import ChatSettings

    ui = UI(bundle_path=os.environ["UI_BUNDLE"])
    app = ui.app
    ui.wait_ready()
    res = {}
    ids = ui.ids()

    # 0. The header: the model's name is shortened at its end when it does not fit, never cut at its start.
    header = ids.header
    ui.pump(timeout=0.3)
    res["header"] = header_lines(ui) | {"name": app.model_name}

    # 1. A long first reply is followed to its end.
    app.max_new_tokens = 220
    ui.type_and_send("tell me everything about the sea")
    res["focus_after_send"] = ids.prompt.focus
    ui.wait_idle(120)
    ui.pump(timeout=0.5)
    rv = ids.messages
    ui.pump(lambda: abs(rv.scroll_y) < 0.001, 5)  # a loaded machine: Kivy's damped scroll may still be settling
    res["long_reply"] = {"content_h": rv.layout_manager.height, "view_h": rv.height, "scroll_y": rv.scroll_y,
                         "reply_chars": len(app.messages[-1]["text"])}

    # 2. Other scripts: each message through the UI, and how its bubble is drawn.
    app.max_new_tokens = 4
    res["scripts"] = {}
    for name, text in SCRIPTS.items():
        app.new_chat()
        ui.pump(timeout=0.2)
        ui.type_and_send(text)
        ui.wait_idle(60)
        ui.pump(timeout=0.3)
        label = label_of(ui, 0)
        res["scripts"][name] = {"text": label.text, "markup": label.markup, "font_name": label.font_name,
                                "direction": label.font_direction, "script": label.font_script_name,
                                "halign": label.halign, "bubble": app.messages[0]["text"]}
        if name == "arabic":
            res["screenshot"] = ui.screenshot(os.environ["UI_SCREENSHOT"])

    # 3. The settings panel: nothing clipped; top-p and repetition penalty reach the runtime.
    def panel_open():
        return any(isinstance(w, ChatSettings) for w in Window.children)

    press(ids.settings_button)
    ui.pump(panel_open, 10)
    panel = next(w for w in Window.children if isinstance(w, ChatSettings))
    clipped = []
    for w in panel.walk():
        if type(w).__name__ == "FieldLabel" and w.texture_size[1] > w.height + 1:
            clipped.append(w.text)
    res["clipped_labels"] = clipped
    res["defaults"] = {"repetition_penalty": panel.ids.repetition_penalty.value, "top_p": panel.ids.top_p.value}
    panel.ids.repetition_penalty.value = 1.3
    panel.ids.top_p.value = 0.8
    press(panel.ids.apply_button)
    ui.pump(lambda: not panel_open(), 10)
    ui.type_and_send("hello")
    res["worker_kwargs"] = dict(app.worker._gen_kwargs)
    ui.wait_idle(60)

    # 4. A bad bundle chosen in settings: the working model and the conversation stay.
    before = [dict(m) for m in app.messages]
    model = app.model
    press(ids.settings_button)
    ui.pump(panel_open, 10)
    panel = next(w for w in Window.children if isinstance(w, ChatSettings))
    panel.ids.bundle.text = os.environ["UI_BAD_BUNDLE"]
    press(panel.ids.apply_button)
    ui.pump(lambda: "Could not open" in app.banner_text, 30)
    res["bad_bundle"] = {"banner": app.banner_text, "same_model": app.model is model, "ready": app.model_ready,
                         "screen": app.root.current, "messages_kept": [dict(m) for m in app.messages] == before,
                         "bundle_path": app.bundle_path}
    ui.type_and_send("still there?")
    ui.wait_idle(60)
    res["after_bad_bundle"] = {"bubbles": len(app.messages), "last": app.messages[-1]}
    ui.close()
    emit(res)


if __name__ == "__main__":
    run(main)
