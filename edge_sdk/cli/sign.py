"""edge-sdk keygen / edge-sdk sign: Ed25519 keys, and a signature over a bundle's manifest.

An app that loads bundles it did not make can require a publisher's signature:
`edge_sdk.load(bundle, trusted_keys=["publisher.pub"])`, or `--trusted-key publisher.pub` on run/chat.
"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles",
                       description="Write a private key (KEY, readable by you only) and its public key (KEY.pub). "
                                   "Give KEY.pub to the apps that should trust your bundles; keep KEY secret.")
    k.add_argument("--output", "-o", required=True, metavar="KEY", help="private key file to write (and KEY.pub)")
    k.set_defaults(func=run_keygen)
    s = sub.add_parser("sign", help="sign a bundle's manifest (which lists every file's sha256)",
                       description="Write edge_manifest.sig into BUNDLE: an Ed25519 signature over the manifest. "
                                   "The manifest lists the sha256 of every file, so the signature covers the whole "
                                   "bundle; a later change to any file or to the manifest breaks it.",
                       epilog="example:\n  edge-sdk keygen -o publisher.key\n  edge-sdk sign bundles/smollm2 --key "
                              "publisher.key\n  edge-sdk run bundles/smollm2 --trusted-key publisher.key.pub -p Hi",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("bundle", metavar="BUNDLE", help="edge bundle folder")
    s.add_argument("--key", required=True, metavar="KEY", help="private key file (from edge-sdk keygen)")
    s.set_defaults(func=run_sign)


def run_keygen(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    from edge_sdk.runtime.bundle.signature import new_key, private_key_text, public_key, public_key_text

    key, pub = Path(args.output), Path(args.output + ".pub")
    for p in (key, pub):
        if p.exists():
            print(f"error: {p} already exists; choose another --output (keys are never overwritten)", file=sys.stderr)
            return 2
    seed = new_key()
    try:
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        print(f"error: cannot write {key}: {e.strerror}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(private_key_text(seed))
    pub.write_text(public_key_text(public_key(seed)), encoding="utf-8")
    print(f"{key} (private, keep it secret) and {pub} (public, give it to apps)")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    import sys

    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.bundle.signature import load_private_key, public_key, public_key_text, sign_bundle

    try:
        seed = load_private_key(args.key)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    read_manifest(args.bundle)  # sign only a bundle that checks out as it is now
    path = sign_bundle(args.bundle, seed)
    print(f"{path}: signed by {public_key_text(public_key(seed)).strip()}")
    return 0
