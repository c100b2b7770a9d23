"""Float vs int8 vs int4 KV cache, side by side: memory, speed and quality at several contexts.

    python benchmarks/kv_cache.py FLOAT_BUNDLE --context 512 1024 2048 4096 --rounds 3 [--work DIR] [--json OUT]

FLOAT_BUNDLE is a fused bundle with a float cache and a max_context of at least the largest --context
(e.g. `edge-sdk export smollm2-135m-instruct --max-context 4096 --output B`). Its int8 and int4 copies are made
in --work with the exporter's calibration and graph rewrite (exporters/graph/kv_quant.py requantize_bundle),
so the three differ in their cache only. Each (round, context, format) runs in a fresh process, formats
interleaved: load with a cache of `context` tokens, prefill a held-out text to context - 40 tokens, decode 32
greedy tokens at that depth; peak RSS growth over the process before the load. The text is --text FILE, or
runtime/eval_text.py (~1100 tokens) repeated: past ~1k tokens a repeated text measures copying, so give a
file at least as long as the context for 2k/4k (the rows' "text_tokens" says how long it was). Quality
(first round; it does not change between runs): the perplexity of that text teacher-forced over the whole
context, its top-1 agreement with the float cache position by position, and how many of the 32 greedy tokens
match the float cache's. Linux only (/proc/self/status).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NEW_TOKENS = 32
CHILD = r"""
import json, sys, time
import numpy as np, onnxruntime
def status():
    return {k: int(v.split()[0]) * 1024 for k, _, v in (l.partition(":") for l in open("/proc/self/status"))
            if k in ("VmRSS", "VmHWM")}
import edge_sdk
from edge_sdk.runtime.eval_text import EVAL_TEXT
bundle, context, quality, out, source = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
source = open(source, encoding="utf-8").read() if source else EVAL_TEXT
before = status()
model = edge_sdk.load(bundle, max_context=context, threads=2)
text = model.encode_prompt(source, raw=True)
ids = (text * (1 + context // len(text)))[:context - 40]
eng = model.engine
t0 = time.perf_counter()
logits = eng.forward(ids)
prefill = time.perf_counter() - t0
tokens = [int(np.argmax(logits))]
t0 = time.perf_counter()
for _ in range(%d - 1):
    tokens.append(int(np.argmax(eng.forward([tokens[-1]]))))
decode = time.perf_counter() - t0
after = status()
row = {"context": context, "prompt": len(ids), "text_tokens": len(text), "kv_mb": eng.cache.nbytes / 2**20,
       "peak_mb": (after["VmHWM"] - before["VmRSS"]) / 2**20, "prefill_tok_s": len(ids) / prefill,
       "decode_tok_s": (len(tokens) - 1) / decode, "greedy": tokens}
if quality:  # teacher-forced, 256 rows a pass: the logits of 4k positions at once would be 800 MB
    model.decoder.reset()
    nll, top = [], []
    for i in range(0, len(ids), 256):
        z = eng.forward(ids[i:i + 256], all_logits=True).astype(np.float64)
        top.append(z.argmax(-1))
        nxt = ids[i + 1:i + 257]
        z = z[:len(nxt)]
        m = z.max(-1)
        nll.append(np.log(np.exp(z - m[:, None]).sum(-1)) + m - z[np.arange(len(nxt)), nxt])
    np.savez(out, nll=np.concatenate(nll), top=np.concatenate(top))
print(json.dumps(row))
""" % NEW_TOKENS


def _copies(src: Path, work: Path, formats: list[str]) -> dict[str, Path]:
    import edge_sdk
    from edge_sdk.exporters.graph.kv_quant import calibration_sequences, requantize_bundle

    out = {}
    for fmt in formats:
        if fmt == "float":
            out[fmt] = src
            continue
        dst = work / f"{src.name}-kv-{fmt}"
        if not (dst / "edge_manifest.json").exists():
            seqs = calibration_sequences(edge_sdk.load(src).encode_prompt)
            requantize_bundle(src, dst, fmt, seqs)
        out[fmt] = dst
    return out


def _spread(xs: list[float], digits: int = 0) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}–{max(xs):.{digits}f})"


def main() -> int:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path, help="a fused bundle with a float KV cache")
    p.add_argument("--context", type=int, nargs="+", required=True)
    p.add_argument("--formats", nargs="+", default=["float", "int8", "int4"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", type=Path, help="where the int8/int4 copies go (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON lines to this file")
    p.add_argument("--text", type=Path, help="the held-out text (UTF-8); default runtime/eval_text.py, repeated "
                   "to fill the context")
    p.add_argument("--report", action="store_true",
                   help="run nothing: print the table from --json's rows and the quality files in --work")
    args = p.parse_args()
    if not Path("/proc/self/status").exists():
        p.error("this reads /proc/self/status: Linux or Android only")
    if "float" not in args.formats:
        p.error("--formats must include float: quality is measured against it")
    work = args.work or Path(tempfile.mkdtemp(prefix="kv_cache_bench"))
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[tuple[int, str], list[dict]] = {}
    if args.report:
        if not args.json:
            p.error("--report reads the rows of --json")
        for line in args.json.read_text().splitlines():
            row = json.loads(line)
            rows.setdefault((row["context"], row["format"]), []).append(row)
        _table(args, work, rows)
        return 0
    bundles = _copies(args.bundle, work, args.formats)
    for r in range(args.rounds):
        for context in args.context:
            for fmt in args.formats:
                npz = work / f"q-{fmt}-{context}.npz"
                proc = subprocess.run([sys.executable, "-c", CHILD, str(bundles[fmt]), str(context),
                                       "1" if r == 0 else "0", str(npz), str(args.text or "")],
                                      capture_output=True, text=True,
                                      timeout=3600)
                if proc.returncode:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return 1
                row = {"round": r, "format": fmt, **json.loads(proc.stdout.strip().splitlines()[-1])}
                rows.setdefault((context, fmt), []).append(row)
                print(f"round {r} context {context} {fmt}: peak {row['peak_mb']:.0f} MB, prefill "
                      f"{row['prefill_tok_s']:.0f} tok/s, decode {row['decode_tok_s']:.1f} tok/s", file=sys.stderr)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
    _table(args, work, rows)
    return 0


def _interval(diff, block: int = 64, draws: int = 2000) -> tuple[float, float]:
    """95 % interval of the perplexity ratio from per-position NLL differences, by a block bootstrap (neighbouring
    positions are correlated): how much of the mean a different stretch of text could move."""
    import numpy as np

    blocks = [diff[i:i + block] for i in range(0, len(diff), block)]
    rng = np.random.default_rng(0)
    means = [np.concatenate([blocks[j] for j in rng.integers(0, len(blocks), len(blocks))]).mean()
             for _ in range(draws)]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(np.exp(lo) - 1), float(np.exp(hi) - 1)


def _table(args, work: Path, rows: dict[tuple[int, str], list[dict]]) -> None:
    """The markdown table; "estimate" is runtime/fit.py's memory_need for that bundle and context (what
    edge_sdk.load compares with MemAvailable), next to the measured peak growth."""
    import numpy as np

    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.fit import MB, memory_need

    manifest = read_manifest(args.bundle)
    rounds = max(len(v) for v in rows.values())
    print(f"{args.bundle} (+ its int8/int4 cache copies), {rounds} rounds: median (min–max)\n")
    print("| context | KV cache | KV MB | peak RSS growth MB | fit estimate MB | prefill tok/s | decode tok/s at depth "
          "| perplexity (vs float; 95 % block-bootstrap interval) | top-1 agreement | greedy tokens = float |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for context in args.context:
        ref = np.load(work / f"q-float-{context}.npz")
        ref_greedy = rows[(context, "float")][0]["greedy"]
        for fmt in args.formats:
            rs, q = rows[(context, fmt)], np.load(work / f"q-{fmt}-{context}.npz")
            ppl = float(np.exp(q["nll"].mean()))
            inc = float(np.exp(q["nll"].mean() - ref["nll"].mean()) - 1)
            lo, hi = _interval(q["nll"] - ref["nll"])
            agree = float((q["top"] == ref["top"]).mean())
            g = rs[0]["greedy"]
            same = next((i for i, (a, b) in enumerate(zip(g, ref_greedy)) if a != b), len(g))
            dtype = {"float": "float32", "int8": "int8", "int4": "uint8"}[fmt]
            kv = {**manifest["kv_cache"], "format": fmt, "dtype": dtype}
            estimate = memory_need({**manifest, "kv_cache": kv}, context).total / MB
            print(f"| {context} | {fmt} | {rs[0]['kv_mb']:.1f} | {_spread([x['peak_mb'] for x in rs])} | "
                  f"{estimate:.0f} | "
                  f"{_spread([x['prefill_tok_s'] for x in rs])} | {_spread([x['decode_tok_s'] for x in rs], 1)} | "
                  f"{ppl:.3f} ({inc * 100:+.2f} %; {lo * 100:+.2f} to {hi * 100:+.2f} %) | {agree * 100:.1f} % | "
                  f"{same}/{len(g)} |")


if __name__ == "__main__":
    sys.exit(main())
