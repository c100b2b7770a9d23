"""Decode and prefill speed of several edge-sdk bundles side by side, interleaved, each run a fresh process.

    .venv/bin/python benchmarks/bundle_matrix.py BUNDLE [BUNDLE ...] [--rounds 5] [--threads 2] [--new-tokens 128]

For comparing two exports of one model (a recipe change, a graph rewrite): round r runs every bundle once, the
order rotating, so machine noise hits all alike. Each run loads the bundle with `edge_sdk.load`, does one
untimed generation, then one timed: a prefill of the prompt ids, then new_tokens - 1 greedy single-token steps
(EOS ignored), as benchmarks/compare.py does. The prompt ids are compare.py's (--ids, written by a compare.py
run) or, without them, the bundle's own chat template applied to compare.py's prompt. Prints medians (min-max),
peak RSS, and how many leading tokens each bundle shares with the first one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNNER = r"""
import json, sys, time
import numpy as np
import edge_sdk
bundle, ids_file, threads, n_new, system, user = sys.argv[1:7]
m = edge_sdk.load(bundle, threads=int(threads))
if ids_file:
    ids = json.load(open(ids_file))["ids"]
else:
    ids = m.encode_prompt([{"role": "system", "content": system}, {"role": "user", "content": user}])
e, n_new = m.engine, int(n_new)
for _ in range(2):  # the first is the warm-up
    e.reset()
    t0 = time.perf_counter()
    tok = int(np.argmax(e.forward(ids)))
    t1 = time.perf_counter()
    out = [tok]
    for _ in range(n_new - 1):
        tok = int(np.argmax(e.forward([tok])))
        out.append(tok)
    t2 = time.perf_counter()
hwm = next(int(l.split()[1]) * 1024 / 1e6 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"prefill": len(ids) / (t1 - t0), "decode": (n_new - 1) / (t2 - t1), "rss": hwm, "tokens": out}))
"""


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

    ids_file = str(args.ids) if args.ids.is_file() else ""
    names = [str(b) for b in args.bundles]
    results: dict[str, list[dict]] = {n: [] for n in names}
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            proc = subprocess.run([sys.executable, "-c", RUNNER, n, ids_file, str(args.threads), str(args.new_tokens),
                                   DEFAULT_SYSTEM, DEFAULT_USER], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{n} failed:\n{proc.stderr[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
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
