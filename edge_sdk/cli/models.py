"""edge-sdk models: the versions in this device's store; switch, roll back, remove, free space."""
from __future__ import annotations

import argparse

from ._store import add_store_args

EPILOG = """\
examples:
  edge-sdk models                              every model and version, the active ones marked *
  edge-sdk models --path smollm2               the active version's folder (for edge-sdk run/serve)
  edge-sdk models --use smollm2 1              switch to an installed version (after its smoke prompt)
  edge-sdk models --rollback smollm2           back to the version active before
  edge-sdk models --remove smollm2 1           remove one version (not the active one)
  edge-sdk models --gc                         remove interrupted downloads and unused versions
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model versions in this device's store (and switch, remove, gc)",
                       description="List the store's models and versions; with an option, change which is active or "
                                   "free space. Python: edge_sdk.store.Store(DIR).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_args(p)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--path", metavar="NAME", help="print the active version's folder of NAME")
    act.add_argument("--use", nargs=2, metavar=("NAME", "VERSION"), help="make an installed version active")
    act.add_argument("--rollback", metavar="NAME", help="make the previous version active again")
    act.add_argument("--remove", nargs="+", metavar="NAME [VERSION]",
                     help="remove a version that is not active, or the whole model")
    act.add_argument("--gc", action="store_true", help="remove interrupted downloads and versions that are neither "
                                                       "active nor previous")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from ._store import open_store

    store = open_store(args)
    if args.path:
        print(store.path(args.path))
        return 0
    if args.use:
        store.use(*args.use)
        print(f"{args.use[0]} {args.use[1]} is active")
        return 0
    if args.rollback:
        print(f"{args.rollback} {store.rollback(args.rollback)} is active again")
        return 0
    if args.remove:
        if len(args.remove) > 2:
            print("error: --remove takes NAME [VERSION]", file=sys.stderr)
            return 2
        freed = store.remove(*args.remove)
        print(f"removed {' '.join(args.remove)} ({freed / 1e6:.1f} MB freed)")
        return 0
    if args.gc:
        print(f"{store.gc() / 1e6:.1f} MB freed in {store.root}")
        return 0
    rows = store.list()
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in rows], indent=2))
        return 0
    if not rows:
        print(f"{store.root} holds no models yet (edge-sdk pull URL NAME)")
        return 0
    print(f"{store.root}:")
    for r in rows:
        mark = "*" if r.active else "p" if r.previous else " "
        size = f"{r.bytes / 1e6:8.1f} MB" if r.bytes is not None else "  damaged  "
        signed = "signed" if r.signed_by else "unsigned"
        print(f" {mark} {r.name:24s} {r.version:14s} {size}  {signed:8s}  {r.pulled or ''}  {r.url or ''}")
    print("(* active, p previous)")
    return 0
