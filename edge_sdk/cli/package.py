"""edge-sdk package BUNDLE --target TARGET --output DIR: a device build that installs and runs offline."""
from __future__ import annotations

import argparse

EPILOG = """\
targets:
  linux-aarch64   Raspberry Pi 4/5, Jetson, embedded Linux (manylinux aarch64 wheels; default profile raspberry-pi-5)
  linux-x86_64    x86-64 Linux boxes and boards (default profile x86-64-laptop)
  android-arm64   a python-for-android project to build with buildozer (not built here: needs the SDK/NDK)

A Linux build is DIR plus DIR.tar.gz: edge-sdk and its dependencies as wheels for the target,
the bundle, install.sh (offline, into a venv) and run.sh. Copy it to the device and run:
  ./install.sh && ./run.sh "Name the capital of France."

Wheels are downloaded with pip for the target's platform and Python (pip's own configuration,
e.g. PIP_INDEX_URL or PIP_FIND_LINKS, applies); nothing is compiled. Device dependencies
installed here are pinned to the versions installed here, which the bundle was validated with.

examples:
  edge-sdk package bundles/smollm2 --target linux-aarch64 --output dist/pi
  edge-sdk package bundles/smollm2 --target linux-aarch64 --output dist/pi-chat --app chat
  edge-sdk package bundles/smollm2 --target linux-aarch64 --output dist/pi-rag --embedder bundles/minilm
  edge-sdk package bundles/smollm2 --target linux-aarch64 --output dist/pi-json --structured
  edge-sdk package bundles/smollm2 --target android-arm64 --output dist/android --app chat
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("package", help="make a device build: bundle + runtime wheels + install/run scripts",
                       description="Package an edge bundle and the edge-sdk runtime for a device: everything it needs "
                                   "to install offline and run, checked against the target first.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="edge bundle folder (from `edge-sdk export`)")
    p.add_argument("--target", required=True, metavar="TARGET",
                   help="linux-aarch64, linux-x86_64 or android-arm64")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="build folder to write")
    p.add_argument("--app", default=None, metavar="APP",
                   help="what runs on the device: none (edge-sdk run/chat; default on Linux), chat (the Kivy app; "
                        "default and only choice on Android), server (the local OpenAI-compatible server)")
    p.add_argument("--python", metavar="X.Y", help="the device's Python version (default: the target's, 3.11 on Linux)")
    p.add_argument("--embedder", metavar="DIR",
                   help="an embedder bundle to ship too (in embedder/), for `edge-sdk index` / `ask` and the chat "
                        "app's documents panel on the device")
    p.add_argument("--structured", action="store_true",
                   help="ship the grammar engine for structured output and tool calling (response_format, tools): "
                        "llguidance's wheel on Linux (needs glibc >= 2.31), its python-for-android recipe on Android")
    p.add_argument("--device", metavar="NAME",
                   help="device profile for threads, providers and memory budget (default: the target's)")
    p.add_argument("--store-url", metavar="URL",
                   help="ship no bundle: the build pulls BUNDLE's published version from URL on first run "
                        "(edge-sdk publish BUNDLE --output DIR, DIR served at URL)")
    p.add_argument("--force", action="store_true", help="replace --output if it is a previous device build")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    p.add_argument("--json", action="store_true", help="print device_build.json's summary as JSON at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from edge_sdk.deploy import get_target, package

    app = args.app or ("chat" if get_target(args.target).os == "android" else "none")
    build = package(args.bundle, args.target, args.output, app=app, python=args.python, device=args.device,
                    force=args.force, progress=not args.quiet, embedder=args.embedder, structured=args.structured,
                    store_url=args.store_url)
    size = sum(f["bytes"] for f in build["files"].values()) / 1e6
    if args.json:
        summary = {k: v for k, v in build.items() if k != "files"}
        summary["files"] = len(build["files"])
        summary["bytes"] = sum(f["bytes"] for f in build["files"].values())
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.output}: {build['bundle']['name']} for {build['target']['name']} "
              f"(CPython {build['python']['version']}, app {build['app']}), {len(build['files'])} files, {size:.0f} MB")
    return 0
