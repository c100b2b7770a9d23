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

Anchors in the same interleaved rounds: `--llamacpp BUNDLE=GGUF` runs llama.cpp (benchmarks/anchors/
run_llamacpp.py, by --llamacpp-python) on GGUF with BUNDLE's prompt ids (the GGUF the bundle was exported
from: our writer puts the same tokenizer in both); `--ortgenai BUNDLE=FOLDER` runs onnxruntime-genai
(run_ortgenai.py, by --ortgenai-python) on its model builder's folder. Each row then also reports the anonymous
RSS at the end (RssAnon), and with --ppl-tokens N every runtime's perplexity on the same N ids fed one at a time
(the decode path), with the share of positions whose top-1 token equals the bundle's (one run each, untimed).
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
    validation = json.loads((bundle / "edge_manifest.json").read_text()).get("validation", {})
    if "checks" not in validation:  # exported with --no-validate
        return "not validated (exported with --no-validate)"
    checks = {c["name"]: c.get("figures", {}) for c in validation["checks"]}
    logits, ppl = checks.get("logits", {}), checks.get("perplexity", {})
    out = [f"max Δlogit {logits['max_abs_diff']:.2f}, top-1 {logits['top1_agreement']:.1%}"] if logits else []
    if ppl:
        out.append(f"ppl {ppl['ppl']:.2f} vs {ppl['reference_ppl']:.2f} ({ppl['ppl_increase']:+.1%})")
    return "; ".join(out) or "not validated"


def size_mb(bundle: Path) -> float:
    if bundle.is_file():  # a GGUF
        return bundle.stat().st_size / 1e6
    return sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) / 1e6


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def pairs(values: list[str], bundles: list[Path], flag: str) -> list[tuple[Path, Path]]:
    out = []
    for v in values:
        b, sep, m = v.partition("=")
        if not sep or Path(b) not in bundles:
            raise SystemExit(f"{flag} {v}: expected BUNDLE=MODEL with BUNDLE one of the bundles given")
        out.append((Path(b), Path(m)))
    return out


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
    p.add_argument("--llamacpp", action="append", default=[], metavar="BUNDLE=GGUF",
                   help="also run llama.cpp on GGUF, with BUNDLE's prompt ids")
    p.add_argument("--llamacpp-python", type=Path, default=Path("/work/anchors/llamacpp/bin/python"))
    p.add_argument("--ortgenai", action="append", default=[], metavar="BUNDLE=FOLDER",
                   help="also run onnxruntime-genai on its model builder's FOLDER, with BUNDLE's prompt ids")
    p.add_argument("--ortgenai-python", type=Path, default=Path("/work/anchors/ortgenai/bin/python"))
    p.add_argument("--ppl-tokens", type=int, default=0,
                   help="also measure every runtime's perplexity on this many ids, one at a time (0: no)")
    args = p.parse_args()
    # (label, runner, interpreter, model, bundle whose ids it uses)
    entries = [(b.name, RUNNER, Path(sys.executable), b, b) for b in args.bundles]
    entries += [(f"llama.cpp {g.name}", HERE / "anchors" / "run_llamacpp.py", args.llamacpp_python, g, b)
                for b, g in pairs(args.llamacpp, args.bundles, "--llamacpp")]
    entries += [(f"onnxruntime-genai {f.name}", HERE / "anchors" / "run_ortgenai.py", args.ortgenai_python, f, b)
                for b, f in pairs(args.ortgenai, args.bundles, "--ortgenai")]

    work = Path(tempfile.mkdtemp(prefix="scale_bench_"))
    ids_files = {}
    for i, b in enumerate(args.bundles):
        ids_files[b] = work / f"ids{i}.json"
        spec = {"ids": prompt_ids(b, args.prompt_tokens), "new_tokens": args.new_tokens}
        if args.ppl_tokens:
            spec["eval_ids"] = prompt_ids(b, args.ppl_tokens)
        ids_files[b].write_text(json.dumps(spec))

    def run(entry, *extra: str) -> dict:
        label, runner, py, model, b = entry
        cmd = [str(py), str(runner), "--ids", str(ids_files[b]), "--model", str(model),
               "--threads", str(args.threads), *extra]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        if res.returncode != 0:
            sys.stderr.write(res.stderr[-2000:])
            raise SystemExit(f"{label}: runner failed (exit {res.returncode})")
        return json.loads(res.stdout.strip().splitlines()[-1])

    runs: dict[tuple, list[dict]] = {e: [] for e in entries}
    for r in range(args.rounds):
        order = entries[r % len(entries):] + entries[:r % len(entries)]
        for e in order:
            out = run(e, "--warmup", "1", "--reps", "1")
            runs[e].append(out)
            rep = out["reps"][0]
            print(f"round {r + 1} {e[0]}: load {out['load_s']:.1f} s, TTFT {rep['ttft_s'] * 1e3:.0f} ms, "
                  f"decode {(out['new_tokens'] - 1) / rep['decode_s']:.1f} tok/s, peak RSS {out['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
    ppl = {e: run(e, "--ppl") for e in entries} if args.ppl_tokens else {}
    anchors = len(entries) > len(args.bundles)
    if args.json:  # first: the raw results survive a failure in the table below
        args.json.write_text(json.dumps({"runs": {e[0]: o for e, o in runs.items()},
                                         "ppl": {e[0]: o for e, o in ppl.items()}}, indent=1)
                             if (anchors or ppl) else json.dumps({str(e[3]): o for e, o in runs.items()}, indent=1))

    print(f"{args.rounds} rounds, {args.prompt_tokens}-token prompt, {args.new_tokens} new tokens, greedy, "
          f"{args.threads} threads; median (min–max)\n")
    if not anchors and not ppl:  # the original table
        print("| bundle | size MB | load s | TTFT ms | prefill tok/s | decode tok/s | peak RSS MB | quality (export validation) |")
        print("|---|---|---|---|---|---|---|---|")
    else:
        print("| runtime, model | size MB | load s | TTFT ms | prefill tok/s | decode tok/s | peak RSS MB | RssAnon MB "
              "| quality |")
        print("|---|---|---|---|---|---|---|---|---|")
    for e, outs in runs.items():
        b = e[3]
        load = [o["load_s"] for o in outs]
        ttft = [o["reps"][0]["ttft_s"] * 1e3 for o in outs]
        prefill = [o["prompt_tokens"] / o["reps"][0]["ttft_s"] for o in outs]
        decode = [(o["new_tokens"] - 1) / o["reps"][0]["decode_s"] for o in outs]
        rss = [o["peak_rss_mb"] for o in outs]
        if not anchors and not ppl:
            print(f"| {b.name} | {size_mb(b):.0f} | {spread(load, '.1f')} | {spread(ttft, '.0f')} | "
                  f"{spread(prefill, '.0f')} | {spread(decode, '.1f')} | {spread(rss, '.0f')} | {quality(b)} |")
            continue
        anon = [o["rss_anon_mb"] for o in outs]
        q = [quality(b)] if e[1] == RUNNER else []
        if ppl:
            mine, ref = ppl[e], ppl[entries[[x[3] for x in entries].index(e[4])]]  # the bundle whose ids it used
            same = sum(a == c for a, c in zip(mine["argmax"], ref["argmax"])) / len(ref["argmax"])
            q.append(f"ppl {mine['ppl']:.1f} on {mine['tokens']} ids" + ("" if e[1] == RUNNER else
                     f", top-1 = the bundle's at {same:.0%} of positions"))
        print(f"| {e[0]} | {size_mb(b):.0f} | {spread(load, '.1f')} | {spread(ttft, '.0f')} | "
              f"{spread(prefill, '.0f')} | {spread(decode, '.1f')} | {spread(rss, '.0f')} | {spread(anon, '.0f')} | "
              f"{'; '.join(q)} |")
    for e in entries[len(args.bundles):]:  # greedy agreement of each anchor with its bundle (last timed run)
        same = common_prefix(runs[e][-1]["tokens"], runs[next(x for x in entries if x[3] == e[4])][-1]["tokens"])
        print(f"\n{e[0]}: first {same}/{args.new_tokens} greedy tokens identical to {e[4].name}'s", end="")
    if anchors:
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
