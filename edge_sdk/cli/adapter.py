"""edge-sdk adapter add|ls BUNDLE ...: run-time LoRA adapters of a bundle."""
from __future__ import annotations

import argparse

EPILOG = """\
A bundle exported with `--adapters NAME=PEFT_DIR` switches between its adapters at run time without
reloading (`edge-sdk run BUNDLE --adapter NAME`, `model.generate(..., adapter="NAME")`, and in
`edge-sdk serve` the model id MODEL:NAME). `adapter add` puts one more into such a bundle without
exporting the base model again; with --source (the model the bundle came from) it is validated
against PEFT as at export. A signed bundle loses its signature: sign it again (edge-sdk sign).

examples:
  edge-sdk export smollm2-135m-instruct --output bundles/smollm2 --adapters support=lora/support
  edge-sdk adapter add bundles/smollm2 json=lora/json --source smollm2-135m-instruct
  edge-sdk adapter ls bundles/smollm2
"""


def register(sub: argparse._SubParsersAction) -> None:
    from .export import adapter_spec

    p = sub.add_parser("adapter", help="add or list a bundle's run-time LoRA adapters",
                       description="Manage the LoRA adapters a bundle switches between at run time.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    add = verbs.add_parser("add", help="add a PEFT LoRA adapter to a bundle exported with --adapters",
                           description="Pack a PEFT LoRA adapter into BUNDLE as NAME (no re-export).")
    add.add_argument("bundle", metavar="BUNDLE", help="the bundle (exported with --adapters)")
    add.add_argument("spec", metavar="NAME=PEFT_DIR", type=adapter_spec, help="the adapter's name and PEFT folder")
    add.add_argument("--source", metavar="SOURCE", help="the model the bundle was exported from: validate the adapter "
                                                         "against PEFT on it (needs the export extra)")
    add.add_argument("--force", action="store_true", help="replace an adapter of the same name")
    add.add_argument("--json", action="store_true", help="print the adapter's manifest entry as JSON")
    add.set_defaults(func=run_add)
    ls = verbs.add_parser("ls", help="list a bundle's adapters")
    ls.add_argument("bundle", metavar="BUNDLE")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=run_ls)


def run_add(args: argparse.Namespace) -> int:
    import json

    from edge_sdk.exporters.adapters.add import add_adapter
    from edge_sdk.exporters.progress import Progress

    name, path = args.spec
    entry = add_adapter(args.bundle, name, path, force=args.force, source=args.source,
                        progress=Progress(enabled=not args.json))
    if args.json:
        print(json.dumps(entry, indent=2))
        return 0
    v = entry["validation"]
    status = "validated against PEFT" if v.get("passed") else "not validated (pass --source to validate)"
    print(f"{args.bundle}: adapter {name} added (rank {entry['rank']}, {', '.join(entry['targets'])}), {status}")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    import json

    from edge_sdk.exporters.adapters.add import list_adapters

    adapters = list_adapters(args.bundle)
    if args.json:
        print(json.dumps(adapters, indent=2))
        return 0
    if not adapters:
        print(f"{args.bundle} has no run-time adapters")
    for name, a in adapters.items():
        v = a.get("validation") or {}
        status = "validated" if v.get("passed") else "not validated"
        print(f"{name}: rank {a.get('rank')}, targets {', '.join(a.get('targets') or [])}, {status} ({a['file']})")
    return 0
