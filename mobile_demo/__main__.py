"""``python -m mobile_demo [--bundle PATH]``: the chat app (installed: ``python -m edge_sdk.mobile_demo``)."""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m mobile_demo",
        description="A private chat with a small language model, running on this device. Sampling (temperature, "
                    "top-p, repetition penalty, max new tokens) starts from the bundle's defaults, the same as "
                    "`edge-sdk chat`: its manifest's `generation` section, else edge-sdk's; change it in Settings.")
    parser.add_argument("--bundle", help="edge bundle folder (default: bundles/smollm2-135m-instruct "
                                         "here, then ~/.cache/edge-sdk/bundles/smollm2-135m-instruct)")
    parser.add_argument("--embedder", help="embedder bundle folder for answering from your documents (default: "
                                           "bundles/minilm here, then ~/.cache/edge-sdk/bundles/minilm)")
    parser.add_argument("--index", help="document index file (default: documents.index in the app's data folder)")
    parser.add_argument("--device", metavar="NAME",
                        help="device profile (name or .json file) overriding the bundle's: threads, providers")
    parser.add_argument("--size", default="420x820",
                        help="window size WxH on a desktop (default: phone-like 420x820)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Kivy parses sys.argv itself unless told not to; our options are not its options.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    if args.size and not _on_android():
        width, height = args.size.lower().split("x")
        Config.set("graphics", "width", width)
        Config.set("graphics", "height", height)

    from .app import ChatApp
    from .bundle_paths import find_default_bundle, find_default_embedder

    bundle = args.bundle or find_default_bundle()
    loader = None
    if args.device:
        import functools

        import edge_sdk

        loader = functools.partial(edge_sdk.load, device=args.device)
    embedder = args.embedder or find_default_embedder()
    ChatApp(bundle_path=str(bundle) if bundle else None, loader=loader,
            embedder_path=str(embedder) if embedder else None, index_path=args.index).run()
    return 0


def _on_android() -> bool:
    return "ANDROID_ARGUMENT" in os.environ  # set by python-for-android's launcher


if __name__ == "__main__":
    sys.exit(main())
