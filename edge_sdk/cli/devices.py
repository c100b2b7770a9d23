"""``edge-sdk devices``: list the shipped device profiles."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``devices`` subcommand."""
    p = subparsers.add_parser(
        "devices",
        help="list the device profiles (execution providers, flavour, recipe, threads, context, memory)",
        description=(
            "List the device profiles shipped with edge-sdk.\n\n"
            "A profile picks the execution providers, graph flavour and quantization recipe of an\n"
            "export (edge-sdk export --device NAME) and the runtime's threads and context.\n"
            "Each profile also says why each value was chosen: see --json."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edge-sdk devices\n  edge-sdk devices --json",
    )
    p.add_argument("--json", action="store_true", help="print the full profiles (with reasons) as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the profiles as a table, or as JSON with ``--json``."""
    import json

    from edge_sdk.devices import DEFAULT_PROFILE, list_profiles

    profiles = list_profiles()
    if args.json:
        print(json.dumps([p.to_dict() for p in profiles], indent=2, ensure_ascii=False))
        return 0
    header = ("name", "execution providers", "flavour", "recipe", "threads", "context", "budget MB")
    rows = [
        (
            p.name + (" (default)" if p.name == DEFAULT_PROFILE else ""),
            ", ".join(ep.removesuffix("ExecutionProvider") for ep in p.execution_providers)
            + (" (no CPU fallback)" if p.npu_only else ""),
            p.flavour, p.recipe, str(p.threads), str(p.max_context), str(p.memory_budget_mb),
        )
        for p in profiles
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
