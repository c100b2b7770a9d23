"""The ``edge-sdk`` command line.

Each subcommand lives in its own module with ``register(subparsers)`` and ``run(args)``. Modules
import only argparse at import time; the heavy work (torch for export, onnxruntime for run) is
imported inside ``run`` so that ``edge-sdk --help`` works on a device install.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Order = order in --help.
COMMANDS = ("export", "package", "run", "chat", "serve", "ask", "index", "adapter", "distill", "bench", "eval", "devices", "sign", "publish", "pull", "models")


def build_parser() -> argparse.ArgumentParser:
    from edge_sdk import __version__

    parser = argparse.ArgumentParser(
        prog="edge-sdk",
        description="Export small language models for phones and boards, and run them with numpy + onnxruntime.",
    )
    parser.add_argument("--version", action="version", version=f"edge-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:  # a command whose module is not in this build
            if e.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from edge_sdk.errors import EdgeError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeError as e:
        from edge_sdk.runtime.display import printable  # messages quote file names and bundle fields

        print(f"error: {printable(e, lines=True)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`edge-sdk run ... | head -c 100`): not an error of ours, and no traceback.
        # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
