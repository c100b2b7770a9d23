"""CPU milliseconds per decode step of each bundle, with one intra-op thread.

    .venv/bin/python benchmarks/everyday_cpu.py BUNDLE [BUNDLE ...] [--steps 24] [--rounds 2]

On a host shared with other work, wall-clock tok/s mostly measures the scheduler. A single-threaded process's
CPU time (time.process_time) is the kernels' own work, so the ratio between two bundles survives the load.
Each round: prefill one chat prompt, then --steps greedy one-token steps, bundles interleaved."""
from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    import edge_sdk

    models = {b: edge_sdk.load(b, threads=1) for b in args.bundles}
    ids = models[args.bundles[0]].encode_prompt("Write a short story about a lighthouse keeper.")
    runs: dict[str, list[float]] = {b: [] for b in args.bundles}
    for r in range(args.rounds):
        for b in args.bundles:
            dec = models[b].decoder
            dec.reset()
            logits, _ = dec.prefill(ids)
            token, t0 = int(logits.argmax()), time.process_time()
            for _ in range(args.steps):
                token = int(dec.step(token).argmax())
            runs[b].append((time.process_time() - t0) / args.steps * 1000)
            print(json.dumps({"round": r + 1, "bundle": b, "cpu_ms_per_step": round(runs[b][-1], 2)}), flush=True)
    for b, xs in runs.items():
        print(f"{b}: {statistics.median(xs):.1f} ms CPU per decode step ({min(xs):.1f}–{max(xs):.1f}, {len(xs)} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
