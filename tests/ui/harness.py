"""Drive the chat app the way a user would, without a display, from a scenario script.

A Kivy App wants to own the process (one Window, one App), so every scenario runs in its own
Python process (see test_*.py) and prints one JSON object as its last stdout line.

The event loop is driven by hand: ``App._run_prepare()`` builds the UI and opens the window as
``App.run()`` would, then ``pump()`` calls ``EventLoop.idle()`` (one frame: clock tick, input,
layout, draw) until a condition holds. Buttons are pressed by dispatching their events, text is
typed by setting the TextInput's text.
"""
from __future__ import annotations

import json
import os
import sys
import time

# Before Kivy is imported: software GL without any X server, no argv parsing, quiet logs,
# a phone-sized window, and no Kivy config written to the user's home.
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("KIVY_NO_ARGS", "1")
if os.environ.get("UI_DEBUG") is None:
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_NO_CONFIG", "1")

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", os.environ.get("UI_WIDTH", "420"))
Config.set("graphics", "height", os.environ.get("UI_HEIGHT", "820"))
Config.set("input", "mtdev_%(name)s", "")  # no touch devices to probe in a container

from kivy.base import EventLoop  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402


class UI:
    """A started app plus helpers to act on it and watch it."""

    def __init__(self, bundle_path=None, device=None, loader=None, **app_kwargs):
        """loader, app_kwargs: passed to ChatApp (a scenario injecting its own loader or RAG module)."""
        # The repository's app by default; an installed one (a device build) names its module.
        import importlib

        ChatApp = importlib.import_module(os.environ.get("UI_APP_MODULE", "mobile_demo.app")).ChatApp
        if device:
            import functools

            import edge_sdk

            loader = functools.partial(edge_sdk.load, device=device)
        self.app = ChatApp(bundle_path=bundle_path, loader=loader, **app_kwargs)
        self.app._run_prepare()   # what App.run() does before entering the main loop
        self.frames = 0           # frames actually drawn (Window.on_flip)
        self.ticks = 0            # main-loop iterations that ran Clock callbacks
        Window.bind(on_flip=self._count_frame)
        Clock.schedule_interval(self._count_tick, 0)

    def _count_frame(self, *_):
        self.frames += 1

    def _count_tick(self, _dt):
        self.ticks += 1

    # -- driving ---------------------------------------------------------------------------

    def pump(self, until=None, timeout=10.0):
        """Run frames until ``until()`` is true (returns True) or ``timeout`` passes.

        Without ``until`` it simply runs frames for ``timeout`` seconds.
        """
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            EventLoop.idle()
            if until is not None and until():
                return True
        return until is None

    def ids(self, screen="chat"):
        return self.app.root.get_screen(screen).ids

    def type_and_send(self, text):
        ids = self.ids()
        ids.prompt.text = text
        press(ids.send_button)

    def wait_ready(self, timeout=60.0):
        return self.pump(lambda: self.app.model_ready or self.app.root.current == "setup", timeout)

    def wait_idle(self, timeout=60.0):
        # The reply is shown when `generating` goes off; the worker then runs it as a prompt pass
        # (chat.settle) in the background. Idle is both done: nothing competes with the UI for the CPU.
        worker_done = lambda: self.app.worker is None or not self.app.worker.is_alive()  # noqa: E731
        return self.pump(lambda: not self.app.generating and worker_done(), timeout)

    def bubbles(self):
        return [dict(d) for d in self.app.messages]

    def screenshot(self, path):
        """Window.screenshot() appends a counter to the name; return the file it really wrote."""
        self.pump(timeout=0.2)  # let the last layout settle into a drawn frame
        written = Window.screenshot(name=path)
        return written

    def close(self):
        self.app.stop()
        self.pump(timeout=0.1)


def press(button):
    """A tap: press then release, as a finger would (on_release is what the app listens to)."""
    button.dispatch("on_press")
    button.dispatch("on_release")


def run(main):
    """Run a scenario's ``main``; a failure still ends with a RESULT line naming it.

    Kivy's logger owns stderr when console logging is off, so print the traceback ourselves.
    """
    import traceback

    try:
        main()
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with the traceback
        text = traceback.format_exc()
        sys.__stderr__.write(text)
        emit({"error": f"{type(exc).__name__}: {str(exc)[-500:]}", "traceback": text[-4000:]})
        sys.exit(1)


def emit(result):
    """The scenario's answer, on the last stdout line, for the test to parse."""
    sys.stdout.write("\nRESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
