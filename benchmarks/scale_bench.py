"""Speed and memory of edge-sdk bundles of different sizes, side by side in one run (issue 26).

    .venv/bin/python benchmarks/scale_bench.py /work/bundles/smollm2-int4 /tmp/tinyllama-int4 \\
        --rounds 5 [--json OUT.json]

Each bundle runs in a fresh process per round (benchmarks/anchors/run_edgesdk.py, the protocol of
benchmarks/compare.py: load, one untimed generation, one timed: prefill of the prompt ids -> first token,
then new_tokens - 1 greedy single-token steps, EOS ignored; peak RSS = the process's VmHWM). Rounds are
interleaved and the order rotates, so machine noise hits every bundle alike. The prompt is the same text
(compare.py's ~100-token trip question) through each bundle's own tokenizer.json, cut to --prompt-tokens.

Reported per bundle: median and range (min-max) of load time, TTFT, prefill and decode tokens/s, peak RSS;
the size on disk; and the quality column from the bundle's own manifest: the export's validation against
transformers (max |logit difference|, top-1 agreement, perplexity increase). Random-weight bundles
(benchmarks/scale_models.py) have no meaningful perplexity of their own: their quality column is that
agreement with transformers on the same weights.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "anchors" / "run_edgesdk.py"

TEXT = ("I am planning a weekend trip to the mountains with two friends. We will hike for about five hours "
        "each day and sleep in a small cabin without electricity. What should we pack, how much water do we "
        "need, and what should we do if the weather suddenly changes? Please answer with a short list and "
        "one sentence of advice for each item, and tell us which mistakes beginners make most often.")


def prompt_ids(bundle: Path, n: int) -> list[int]:
    from tokenizers import Tokenizer

    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    tok = Tokenizer.from_file(str(bundle / manifest["tokenizer"]["file"]))
    ids = tok.encode(TEXT).ids
    while len(ids) < n:  # a short vocabulary's encoding: repeat the text, as a longer prompt would
        ids = ids + ids
    return ids[:n]


def quality(bundle: Path) -> str:
    checks = {c["name"]: c.get("figures", {}) for c in
              json.loads((bundle / "edge_manifest.json").read_text())["validation"]["checks"]}
    logits, ppl = checks.get("logits", {}), checks.get("perplexity", {})
    out = [f"max Δlogit {logits['max_abs_diff']:.2f}, top-1 {logits['top1_agreement']:.1%}"] if logits else []
    if ppl:
        out.append(f"ppl {ppl['ppl']:.2f} vs {ppl['reference_ppl']:.2f} ({ppl['ppl_increase']:+.1%})")
    return "; ".join(out) or "not validated"


def size_mb(bundle: Path) -> float:
    return sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) / 1e6


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=98)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per runner process")
    p.add_argument("--json", type=Path, help="also write the raw per-run results here")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scale_bench_"))
    ids_files = {}
    for i, b in enumerate(args.bundles):
        ids_files[b] = work / f"ids{i}.json"
        ids_files[b].write_text(json.dumps({"ids": prompt_ids(b, args.prompt_tokens), "new_tokens": args.new_tokens}))
    runs: dict[Path, list[dict]] = {b: [] for b in args.bundles}
    for r in range(args.rounds):
        order = args.bundles[r % len(args.bundles):] + args.bundles[:r % len(args.bundles)]
        for b in order:
            cmd = [sys.executable, str(RUNNER), "--ids", str(ids_files[b]), "--model", str(b),
                   "--threads", str(args.threads), "--warmup", "1", "--reps", "1"]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            if res.returncode != 0:
                sys.stderr.write(res.stderr[-2000:])
                raise SystemExit(f"{b}: runner failed (exit {res.returncode})")
            out = json.loads(res.stdout.strip().splitlines()[-1])
            runs[b].append(out)
            rep = out["reps"][0]
            print(f"round {r + 1} {b.name}: load {out['load_s']:.1f} s, TTFT {rep['ttft_s'] * 1e3:.0f} ms, "
                  f"decode {(out['new_tokens'] - 1) / rep['decode_s']:.1f} tok/s, peak RSS {out['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)

    print(f"{args.rounds} rounds, {args.prompt_tokens}-token prompt, {args.new_tokens} new tokens, greedy, "
          f"{args.threads} threads; median (min–max)\n")
    print("| bundle | size MB | load s | TTFT ms | prefill tok/s | decode tok/s | peak RSS MB | quality (export validation) |")
    print("|---|---|---|---|---|---|---|---|")
    for b, outs in runs.items():
        load = [o["load_s"] for o in outs]
        ttft = [o["reps"][0]["ttft_s"] * 1e3 for o in outs]
        prefill = [o["prompt_tokens"] / o["reps"][0]["ttft_s"] for o in outs]
        decode = [(o["new_tokens"] - 1) / o["reps"][0]["decode_s"] for o in outs]
        rss = [o["peak_rss_mb"] for o in outs]
        print(f"| {b.name} | {size_mb(b):.0f} | {spread(load, '.1f')} | {spread(ttft, '.0f')} | "
              f"{spread(prefill, '.0f')} | {spread(decode, '.1f')} | {spread(rss, '.0f')} | {quality(b)} |")
    if args.json:
        args.json.write_text(json.dumps({str(b): o for b, o in runs.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
