"""Decode and prefill speed of several edge-sdk bundles side by side, interleaved, each run a fresh process.

    .venv/bin/python benchmarks/bundle_matrix.py BUNDLE [BUNDLE ...] [--rounds 5] [--threads 2] [--new-tokens 128]

For comparing two exports of one model (a recipe change, a graph rewrite): round r runs every bundle once, the
order rotating, so machine noise hits all alike. Each run is compare.py's edge-sdk runner
(benchmarks/anchors/run_edgesdk.py) in a fresh process: load, one untimed generation, one timed (a prefill of
the prompt ids, then new_tokens - 1 greedy single-token steps, EOS ignored). The prompt ids are compare.py's
(--ids, written by a compare.py run) or, without them, the first bundle's chat template applied to
compare.py's prompt. Prints medians (min-max), peak RSS, and how many leading tokens each bundle shares with
the first one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--ids", type=Path, default=Path(os.environ.get("BENCH_VENVS", "/work/bench-venvs")) / "work" / "prompt_ids.json",
                   help="prompt ids written by compare.py (default: %(default)s; if missing, the bundle's template)")
    args = p.parse_args(argv)
    for b in args.bundles:
        if not (b / "edge_manifest.json").is_file():
            p.error(f"{b} is not an edge bundle (no edge_manifest.json)")
    if args.rounds < 1 or args.new_tokens < 2:
        p.error("--rounds must be >= 1 and --new-tokens >= 2")
    sys.path.insert(0, str(HERE))
    from compare import DEFAULT_SYSTEM, DEFAULT_USER

    with tempfile.TemporaryDirectory() as tmp:
        ids_file = args.ids
        if not ids_file.is_file():
            import edge_sdk

            ids = edge_sdk.load(args.bundles[0]).encode_prompt(
                [{"role": "system", "content": DEFAULT_SYSTEM}, {"role": "user", "content": DEFAULT_USER}])
            ids_file = Path(tmp) / "prompt_ids.json"
            ids_file.write_text(json.dumps({"ids": ids, "new_tokens": args.new_tokens}))
        names = [str(b) for b in args.bundles]
        results: dict[str, list[dict]] = {n: [] for n in names}
        print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                proc = subprocess.run([sys.executable, str(HERE / "anchors" / "run_edgesdk.py"), "--ids", str(ids_file),
                                       "--model", n, "--threads", str(args.threads), "--warmup", "1", "--reps", "1",
                                       "--new-tokens", str(args.new_tokens)], capture_output=True, text=True)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"{n} failed:\n{proc.stderr[-2000:]}")
                run = json.loads(lines[-1])
                rep = run["reps"][0]
                res = {"prefill": run["prompt_tokens"] / rep["ttft_s"], "decode": (run["new_tokens"] - 1) / rep["decode_s"],
                       "rss": run["peak_rss_mb"], "tokens": run["tokens"]}
                results[n].append(res)
                print(f"round {r + 1}/{args.rounds} {n}: decode {res['decode']:.1f} tok/s, prefill {res['prefill']:.0f} tok/s",
                      file=sys.stderr)
    print(f"load average after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    ref = results[names[0]][0]["tokens"]
    print(f"| bundle | decode tok/s | prefill tok/s | peak RSS MB | tokens equal to {Path(names[0]).name}'s |")
    print("|---|---|---|---|---|")
    for n in names:
        d = [x["decode"] for x in results[n]]
        pf = [x["prefill"] for x in results[n]]
        toks = results[n][0]["tokens"]
        same = next((i for i, (a, b) in enumerate(zip(toks, ref)) if a != b), len(ref))
        print(f"| {n} | {statistics.median(d):.1f} ({min(d):.0f}–{max(d):.0f}) | {statistics.median(pf):.0f} "
              f"| {statistics.median(x['rss'] for x in results[n]):.0f} | {same}/{len(ref)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
