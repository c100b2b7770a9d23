"""Options shared by `edge-sdk pull` and `edge-sdk models`: which store, which keys, which token; the progress bar."""
from __future__ import annotations

import argparse

from ._common import threads


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="DIR", help="the store folder (default: $EDGE_SDK_STORE, else "
                                                  "$XDG_CACHE_HOME/edge-sdk/store, else ~/.cache/edge-sdk/store)")
    p.add_argument("--trusted-key", action="append", metavar="KEY.pub",
                   help="accept only versions signed by this publisher key (edge-sdk keygen; repeatable)")
    p.add_argument("--device", metavar="NAME", help="device profile to load the smoke prompt with")
    p.add_argument("--threads", type=threads, metavar="N", help="threads for the smoke prompt")


def open_store(args: argparse.Namespace, token: str | None = None):
    from edge_sdk.store import Store

    options = {k: v for k, v in (("device", args.device), ("threads", args.threads)) if v is not None}
    return Store(args.store, trusted_keys=args.trusted_key, load_options=options, token=token)


def progress_bar(stream=None, width: int = 28):
    """A PullProgress callback drawing `[#####.....] 45%  50.1/111.9 MB  1/3 files  model.onnx.data` on stderr:
    redrawn in place on a terminal, a line per stage and per file otherwise (logs stay short)."""
    import sys

    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last = {"stage": None, "file": None}
    words = {"waiting": "waiting for another process to finish with the store", "index": "reading the index",
             "verify": "checking the assembled version", "smoke": "loading it and asking a smoke prompt",
             "activate": "switching to it", "done": "done"}

    def show(p) -> None:
        if p.stage == "download":
            frac = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
            bar = "#" * int(frac * width) + "." * (width - int(frac * width))
            line = (f"[{bar}] {frac * 100:3.0f}%  {p.bytes_done / 1e6:.1f}/{p.bytes_total / 1e6:.1f} MB  "
                    f"{p.files_done}/{p.files_total} files  {p.file or ''}")
            if tty:
                stream.write("\r" + line[:110].ljust(110))
            elif p.file != last["file"]:
                stream.write(line + "\n")
            last["file"] = p.file
        elif p.stage != last["stage"]:
            if tty and last["stage"] == "download":
                stream.write("\n")
            what = f"{p.name} {p.version}" if p.version else p.name
            stream.write(f"{what}: {words.get(p.stage, p.stage)}\n")
        last["stage"] = p.stage
        stream.flush()

    return show
