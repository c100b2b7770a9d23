"""Progress reporting for long host-side work: numbered stages and a simple bar on stderr."""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager


class Progress:
    """Prints `[stage] message` lines and an in-place bar; silent when disabled (tests, --quiet)."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._t0 = time.perf_counter()
        self._is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def _print(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def stage(self, message: str) -> None:
        self._print(f"[{time.perf_counter() - self._t0:6.1f}s] {message}")

    def note(self, message: str) -> None:
        self._print(f"         {message}")

    def bar(self, iterable, total: int, label: str):
        """Yield from iterable, drawing `label [####....] i/total`."""
        last = 0.0
        for i, item in enumerate(iterable, 1):
            yield item
            now = time.perf_counter()
            if self.enabled and (i == total or now - last > 0.2):
                last = now
                filled = int(30 * i / max(total, 1))
                line = f"         {label} [{'#' * filled}{'.' * (30 - filled)}] {i}/{total}"
                if self._is_tty:
                    end = "\n" if i == total else "\r"
                    print(line, end=end, file=self.stream, flush=True)
                elif i == total:
                    print(line, file=self.stream, flush=True)


@contextmanager
def quiet_libraries(quiet: bool = True):
    """Silence the progress bars of transformers, huggingface_hub and tqdm while `quiet` (--quiet means quiet)."""
    if not quiet:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    os.environ.update(TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    tf_logging = None
    try:
        from transformers.utils import logging as tf_logging

        was_active, verbosity = tf_logging.is_progress_bar_enabled(), tf_logging.get_verbosity()
        tf_logging.disable_progress_bar()
        tf_logging.set_verbosity_error()
    except ImportError:
        pass
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tf_logging is not None:
            if was_active:
                tf_logging.enable_progress_bar()
            tf_logging.set_verbosity(verbosity)
