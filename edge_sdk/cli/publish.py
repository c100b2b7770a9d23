"""edge-sdk publish BUNDLE --output DIR: a static folder devices pull the bundle from (edge-sdk pull)."""
from __future__ import annotations

import argparse

EPILOG = """\
DIR can be served by any static web server or object store, as it is:
  index.json                 models, versions, latest, manifest hashes, signatures
  models/NAME/VERSION.json   one version's files with their sha256 and size
  blobs/sha256/..            the files, stored once under their sha256

Publishing more versions into the same DIR keeps the earlier ones (devices may still pull them);
a version shares the blobs of files that did not change, and a device downloads only those it lacks.

examples:
  edge-sdk publish bundles/smollm2 --output site/models --name smollm2 --version 1 --sign publisher.key
  edge-sdk adapter add bundles/smollm2 support=lora/support
  edge-sdk publish bundles/smollm2 --output site/models --name smollm2 --version 2 --sign publisher.key
  python -m http.server -d site 8080       # then, on a device:
  edge-sdk pull http://HOST:8080/models/ smollm2 --trusted-key publisher.key.pub
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="publish a bundle into a static folder that devices pull from",
                       description="Write BUNDLE into DIR as a new version, content-addressed, with an index that "
                                   "`edge-sdk pull` and edge_sdk.store.Store read.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="edge bundle folder")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the published folder (created, or added to)")
    p.add_argument("--name", metavar="NAME", help="the model's name in the store (default: the manifest's name)")
    p.add_argument("--version", metavar="V", help="the version's name (default: the manifest's sha256, 12 digits)")
    p.add_argument("--sign", metavar="KEY", help="sign the version with this private key (edge-sdk keygen)")
    p.add_argument("--not-latest", action="store_true",
                   help="publish without making it the version devices pull by default")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from edge_sdk.deploy.publish import publish

    from ._common import progress_printer

    out = publish(args.bundle, args.output, name=args.name, version=args.version, sign_key=args.sign,
                  latest=not args.not_latest, progress=progress_printer(args.quiet or args.json))
    if args.json:
        print(json.dumps(out, indent=2))
    elif out["unchanged"]:
        print(f"{args.output}: {out['name']} {out['version']} was already published (nothing written)")
    else:
        print(f"{args.output}: {out['name']} {out['version']}{' (latest)' if out['latest'] else ''}"
              f"{', signed' if out['signed'] else ''}: {out['new_files']} new files ({out['new_bytes'] / 1e6:.1f} MB), "
              f"{out['reused_files']} shared with earlier versions ({out['reused_bytes'] / 1e6:.1f} MB)")
    return 0
