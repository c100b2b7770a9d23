"""edge-sdk adapter add|merge|ls BUNDLE ...: run-time LoRA adapters of a bundle."""
from __future__ import annotations

import argparse

EPILOG = """\
A bundle exported with `--adapters NAME=PEFT_DIR` switches between its adapters at run time without
reloading (`edge-sdk run BUNDLE --adapter NAME`, `model.generate(..., adapter="NAME")`, and in
`edge-sdk serve` the model id MODEL:NAME). `adapter add` puts one more into such a bundle without
exporting the base model again; with --source (the model the bundle came from) it is validated
against PEFT as at export. `adapter merge` combines some of a bundle's adapters into a new one, as PEFT's
add_weighted_adapter does (linear, cat, ties, dare_linear; docs/lora.md). A signed bundle loses its
signature: sign it again (edge-sdk sign).

examples:
  edge-sdk export smollm2-135m-instruct --output bundles/smollm2 --adapters support=lora/support
  edge-sdk adapter add bundles/smollm2 json=lora/json --source smollm2-135m-instruct
  edge-sdk adapter merge bundles/smollm2 both --from support:0.7 json:0.3 --method cat
  edge-sdk adapter ls bundles/smollm2
"""


def weighted(text: str) -> tuple[str, float]:
    """NAME:WEIGHT (for `adapter merge --from`)."""
    import math

    name, sep, weight = text.rpartition(":")
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not sep or not name or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected NAME:WEIGHT (e.g. support:0.7), got {text!r}")
    return name, value


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
    merge = verbs.add_parser("merge", help="combine some of a bundle's adapters into a new one (as PEFT does)",
                             description="Combine adapters of BUNDLE into a new run-time adapter NAME, as PEFT's "
                                         "add_weighted_adapter does with the same weights and combination type.")
    merge.add_argument("bundle", metavar="BUNDLE", help="the bundle (exported with --adapters)")
    merge.add_argument("name", metavar="NAME", help="the new adapter's name")
    merge.add_argument("--from", dest="parts", metavar="NAME:WEIGHT", type=weighted, nargs="+", required=True,
                       help="the bundle's adapters to combine, each with its weight (negative subtracts)")
    merge.add_argument("--method", choices=("linear", "cat", "ties", "dare_linear"), default="cat",
                       help="cat (default): exact weighted sum, ranks add up; linear: A and B averaged (same rank, "
                            "approximate); ties / dare_linear: pruned as TIES / DARE (need --density)")
    merge.add_argument("--density", type=float, metavar="D", help="ties / dare_linear: fraction of entries kept (0-1]")
    merge.add_argument("--majority-sign", choices=("total", "frequency"), default="total",
                       help="ties: how the sign of each entry is elected (default total, as PEFT)")
    merge.add_argument("--seed", type=int, help="dare_linear: seed of the random drop (default: fresh)")
    merge.add_argument("--save", metavar="DIR", help="also keep the merged adapter as a PEFT folder (for export "
                                                       "--adapter DIR, or another bundle's adapter add)")
    merge.add_argument("--source", metavar="SOURCE", help="the model the bundle was exported from: validate the merged "
                                                           "adapter against PEFT on it (needs the export extra)")
    merge.add_argument("--force", action="store_true", help="replace an adapter of the same name, and a folder "
                                                             "that an earlier merge --save wrote (never other folders)")
    merge.add_argument("--json", action="store_true", help="print the adapter's manifest entry as JSON")
    merge.set_defaults(func=run_merge)
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


def run_merge(args: argparse.Namespace) -> int:
    import json
    import sys

    from edge_sdk.exporters.adapters.combine import merge_adapters
    from edge_sdk.exporters.progress import Progress

    try:
        entry = merge_adapters(args.bundle, args.name, args.parts, args.method, density=args.density,
                               majority_sign=args.majority_sign, seed=args.seed, save=args.save, force=args.force,
                               source=args.source, progress=Progress(enabled=not args.json))
    except ValueError as e:  # a combination PEFT would refuse too (ranks, density, ...)
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(entry, indent=2))
        return 0
    parts = " + ".join(f"{w:g} x {a}" for a, w in args.parts)
    v = entry["validation"]
    status = "validated against PEFT" if v.get("passed") else "not validated (pass --source to validate)"
    print(f"{args.bundle}: adapter {args.name} = {parts} ({args.method}, rank {entry['rank']}), {status}")
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
