"""edge-sdk eval BUNDLE [--reference BUNDLE]: perplexity, and how far an export drifts from its reference."""
from __future__ import annotations

import argparse

from ._common import add_load_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="perplexity and greedy agreement with a reference bundle",
                       description="Measure the bundle's perplexity on a text (default: a built-in ~1k-token mix "
                                   "of prose, dialogue, code and a few other languages). With --reference "
                                   "(e.g. the fp32 bundle of the same model), also the reference's perplexity, "
                                   "the relative change, and how many greedy reply tokens match on a set of "
                                   "prompts. Perplexity is for comparing bundles of one model, not models.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  edge-sdk eval bundles/smol-int4 --reference bundles/smol-fp32\n"
                              "  edge-sdk eval bundles/smol-int4 --text notes.txt --json")
    add_load_args(p)
    p.add_argument("--reference", metavar="BUNDLE", help="reference bundle of the same model (e.g. fp32)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--text", metavar="FILE", help="UTF-8 text file for perplexity (default: the built-in text)")
    p.add_argument("--window", type=int, metavar="N",
                   help="tokens of context per pass (default: min(512, the bundle's maximum context))")
    p.add_argument("--stride", type=int, metavar="N", help="tokens between window starts (default: window / 2)")
    p.add_argument("--max-new-tokens", type=int, default=32, metavar="N",
                   help="greedy reply length per prompt for the agreement check (default 32)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def _recipe(model) -> str | None:
    return (model.manifest.get("quantization") or {}).get("recipe")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    import edge_sdk
    from edge_sdk.runtime.evaluate import greedy_agreement, perplexity

    from ._common import load_model

    text = None
    if args.text:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            print(f"error: cannot read --text {args.text}: {e}", file=sys.stderr)
            return 2
    from ._common import progress_printer

    show = progress_printer(args.quiet)
    if show:
        show(f"loading {args.bundle}" + (f" and the reference {args.reference}" if args.reference else ""))
    model = load_model(args)
    ref = edge_sdk.load(args.reference, device=args.device, threads=args.threads, kind="decoder") if args.reference else None
    # One window for both bundles, so the two perplexities score the same tokens with the same context.
    window = args.window or min(512, model.max_context, ref.max_context if ref else model.max_context)
    try:
        ppl = perplexity(model, text, window=window, stride=args.stride, progress=show)
        if ref and show:
            show("the reference bundle:")
        ref_ppl = perplexity(ref, text, window=window, stride=args.stride, progress=show) if ref else None
        agree = greedy_agreement(model, ref, max_new_tokens=args.max_new_tokens, progress=show) if ref else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    delta = (ppl["ppl"] - ref_ppl["ppl"]) / ref_ppl["ppl"] if ref_ppl else None
    report = {
        "bundle": str(args.bundle), "recipe": _recipe(model), "text": args.text or "built-in",
        "perplexity": ppl,
        "reference": {"bundle": str(args.reference), "recipe": _recipe(ref), "perplexity": ref_ppl} if ref else None,
        "ppl_delta_rel": delta, "greedy_agreement": agree,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    _print_table(report)
    return 0


def _print_table(r: dict) -> None:
    p = r["perplexity"]
    print(f"bundle       {r['bundle']} ({r['recipe']})")
    print(f"text         {r['text']}: {p['text_tokens']} tokens, {p['tokens']} scored "
          f"(window {p['window']}, stride {p['stride']})")
    print(f"perplexity   {p['ppl']:.3f}")
    if r["reference"] is None:
        return
    ref = r["reference"]
    print(f"reference    {ref['bundle']} ({ref['recipe']}): perplexity {ref['perplexity']['ppl']:.3f}, "
          f"this bundle {r['ppl_delta_rel'] * 100:+.2f}%")
    a = r["greedy_agreement"]
    print(f"greedy       {a['identical']}/{a['total']} replies identical, "
          f"{a['match_fraction'] * 100:.1f}% of reference tokens matched before the first difference "
          f"({a['max_new_tokens']} new tokens max)")
    for row in a["prompts"]:
        mark = "=" if row["identical"] else f"{row['match_prefix']}/{row['reference_tokens']}"
        print(f"  {mark:>7}  {row['prompt']}")
