"""Scenario: the cloud fallback set up in Settings and used in a conversation, as a user would.

Env: UI_BUNDLE (the device's bundle), UI_FALLBACK (an OpenAI-compatible base URL), UI_FALLBACK_MODEL,
UI_SCREENSHOT (optional).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import UI, emit, press, run  # noqa: E402


def main():
    from kivy.core.window import Window
    from mobile_demo.widgets import ChatSettings

    ui = UI(bundle_path=os.environ["UI_BUNDLE"])
    app = ui.app
    ui.wait_ready()
    ids = ui.ids()
    app.max_new_tokens = 8
    statuses = []
    app.bind(status_text=lambda _app, value: statuses.append(value))

    def panel():
        return next((w for w in Window.children if isinstance(w, ChatSettings)), None)

    def settings(**fields):
        press(ids.settings_button)
        ui.pump(lambda: panel() is not None, 10)
        p = panel()
        seen = {"policy": p.ids.policy.text, "url": p.ids.fallback_url.text, "url_disabled": p.ids.fallback_url.disabled}
        for key, value in fields.items():
            if key == "redact":
                p.ids.redact.active = value
            else:
                getattr(p.ids, key).text = value
        ui.pump(timeout=0.2)
        clipped = [w.text for w in p.walk() if type(w).__name__ == "FieldLabel" and w.texture_size[1] > w.height + 1]
        press(p.ids.apply_button)
        ui.pump(lambda: panel() is None, 10)
        return seen, clipped

    def turn(text):
        statuses.clear()
        ui.type_and_send(text)
        ui.wait_idle(120)
        ui.pump(timeout=0.3)
        return {"bubble": dict(app.messages[-1]), "history": [dict(m) for m in app.chat.messages],
                "statuses": list(statuses), "route": app.last_result.route if app.last_result else None}

    res = {"defaults": settings()[0]}
    res["local"] = turn("the sea")  # local-only: no caption, nothing sent
    res["bad"] = {"applied": settings(policy="auto")[1]}  # auto without a URL: refused, said why
    res["bad"].update(banner=app.banner_text, policy=app.policy)
    seen, clipped = settings(policy="auto", fallback_url=os.environ["UI_FALLBACK"],
                             fallback_model=os.environ["UI_FALLBACK_MODEL"])
    res["clipped_labels"] = clipped
    res["header"] = f"{ids.header.text} / {ids.route_note.text}"  # the name, and where answers come from under it
    res["auto"] = turn("tell me about the sky")  # the tiny random model is never sure: escalated
    res["personal"] = turn("write to jane.doe@example.com")  # personal data stays on the device
    res["reopened"] = settings()[0]  # what the panel shows now
    res["redacted"] = (settings(redact=True), turn("and call +44 20 7946 0958"))[1]
    if os.environ.get("UI_SCREENSHOT"):
        res["screenshot"] = ui.screenshot(os.environ["UI_SCREENSHOT"])
    res["captions_on_screen"] = sorted({v.ids.caption.text for v in ids.messages.layout_manager.children
                                        if v.ids.caption.text})
    settings(policy="local-only")
    res["back_local"] = turn("goodbye")
    ui.close()
    emit(res)


if __name__ == "__main__":
    run(main)
