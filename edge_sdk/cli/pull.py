"""edge-sdk pull URL NAME: download a model version into the device's store, verified, and switch to it."""
from __future__ import annotations

import argparse

from ._store import add_store_args

EPILOG = """\
URL is a folder made by `edge-sdk publish`, served by any static web server or object store.
Only the files this device does not have yet are downloaded (an adapter update does not fetch the
weights again); a cut download resumes where it stopped. Every file is checked against its sha256,
the signature against --trusted-key, and the new version must load and answer a short prompt
before it becomes active: otherwise the active version stays and the error says why.

examples:
  edge-sdk pull https://example.com/models/ smollm2
  edge-sdk pull https://example.com/models/ smollm2 --version 2 --trusted-key publisher.key.pub
  edge-sdk run "$(edge-sdk models --path smollm2)" --prompt "Hi"
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="download a published model version into this device's store and switch to it",
                       description="Pull NAME from the published folder at URL into the store: only the files that "
                                   "are missing here, each verified, then activated atomically.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", metavar="URL", help="the published folder's URL (http or https)")
    p.add_argument("name", metavar="NAME", help="the model's name in that folder")
    p.add_argument("--version", metavar="V", help="a version (default: the latest published)")
    add_store_args(p)
    p.add_argument("--token-env", metavar="VAR",
                   help="environment variable holding a bearer token for the server (never sent to another host)")
    p.add_argument("--no-activate", action="store_true", help="download and verify only; switch later with "
                                                               "`edge-sdk models --use NAME VERSION`")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result (bytes downloaded, reused, ...) as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from ._store import open_store, progress_bar

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"error: --token-env {args.token_env}: that environment variable is empty or not set", file=sys.stderr)
            return 2
    store = open_store(args, token)
    result = store.pull(args.url, args.name, version=args.version, activate=not args.no_activate,
                        progress=None if args.quiet else progress_bar())
    if args.json:
        from edge_sdk.runtime.store.pull import describe

        print(json.dumps(describe(result), indent=2))
        return 0
    if result.up_to_date:
        state = "already here" + (", now active" if result.active and result.previous else "")
    else:
        state = (f"downloaded {result.files_downloaded} files ({result.bytes_downloaded / 1e6:.1f} MB), "
                 f"reused {result.files_reused} ({result.bytes_reused / 1e6:.1f} MB)")
    switch = f"active (was {result.previous})" if result.active and result.previous else \
        "active" if result.active else "not active"
    print(f"{result.name} {result.version}: {state}; {switch}; {result.path}")
    return 0
