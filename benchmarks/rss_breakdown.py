"""Where a bundle's resident memory goes, step by step, as the device install sees it (Linux).

    /work/bench-venvs/edgesdk/bin/python benchmarks/rss_breakdown.py BUNDLE [--prompt-tokens 95] [--new-tokens 128]
        [--keep-pages]

Run it with the device install (numpy + onnxruntime, no torch or tokenizers), so the figures are what a
phone or board process holds. Prints VmRSS, VmHWM (the peak so far), RssAnon and RssFile from
/proc/self/status after each step: the imports; the session (onnxruntime's packed weights, and the pages
of the weights file it still maps); the pure-Python tokenizer after its first encode; a prefill of
--prompt-tokens ids; --new-tokens greedy steps; and the same generation again (what stays after the first).
--keep-pages skips `runtime/memory.py`'s release of the mapped pages, to measure what it saves.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) // 1024
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=95)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--keep-pages", action="store_true", help="do not release the mapped weight pages after load")
    args = p.parse_args()
    if not Path("/proc/self/status").exists():
        p.error("this reads /proc/self/status: Linux or Android only")
    if not (args.bundle / "edge_manifest.json").is_file():
        p.error(f"{args.bundle} is not an edge bundle (no edge_manifest.json)")

    rows = [("nothing imported yet", status())]
    import numpy as np
    import onnxruntime  # noqa: F401

    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.engine import FusedEngine
    from edge_sdk.runtime.providers import SessionConfig
    from edge_sdk.runtime.tokenizer import Tokenizer

    rows.append(("Python, numpy, onnxruntime and the runtime's modules imported", status()))
    manifest = read_manifest(args.bundle)
    engine = FusedEngine(manifest, args.bundle, SessionConfig(threads=args.threads, release_pages=not args.keep_pages))
    rows.append(("session created (packed weights; mapped pages of the weights file)", status()))
    tok = manifest["tokenizer"]
    if tok.get("compact_file"):
        tokenizer = Tokenizer.from_compact(args.bundle / tok["compact_file"])
    else:
        tokenizer = Tokenizer.from_file(args.bundle / tok["file"])
    text = "Write a story about a dragon and a knight who become friends. " * (1 + args.prompt_tokens // 8)
    ids = tokenizer.encode(text)[:args.prompt_tokens]
    rows.append(("pure-Python tokenizer loaded, first encode done", status()))

    for run in ("", " (the same generation again)"):
        engine.reset()
        tok_id = int(np.argmax(engine.forward(ids)))
        rows.append((f"prefill of {len(ids)} tokens{run}", status()))
        for _ in range(args.new_tokens - 1):
            tok_id = int(np.argmax(engine.forward([tok_id])))
        rows.append((f"{args.new_tokens - 1} decode steps{run}", status()))
    print(f"{args.bundle}: onnxruntime {onnxruntime.__version__}, {args.threads} threads, "
          f"mapped pages {'kept' if args.keep_pages else 'released after load'}")
    print("| after | VmRSS | peak (VmHWM) | RssAnon | RssFile |\n|---|---|---|---|---|")
    for label, s in rows:
        print(f"| {label} | {s['VmRSS']} | {s['VmHWM']} | {s['RssAnon']} | {s['RssFile']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
