"""The fit-before-load estimate (runtime/fit.py) against measured memory, and what prefill chunks cost.

    python benchmarks/fit_memory.py BUNDLE --context 1024 4096 [--chunk 512] [--rounds 1] [--json OUT]

For each context (and each --chunk), a fresh process loads BUNDLE with a KV cache of that many tokens, fills
the whole context with one prompt (prefilled in passes of CHUNK rows; CHUNK >= context is one pass), then
decodes 8 tokens. It reports the estimate's parts and the process's measured growth over what it held before
the load (Python, numpy and onnxruntime already imported, as when edge_sdk.load runs its check): the peak
while loading (VmHWM) and the peak of the whole run, with the prefill speed. Linux only (/proc/self/status).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out
import numpy, onnxruntime
import edge_sdk
from edge_sdk.runtime.eval_text import EVAL_TEXT
from edge_sdk.runtime.fit import memory_need
from edge_sdk.runtime.bundle import read_manifest
bundle, context, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before = status()
need = memory_need(read_manifest(__import__("pathlib").Path(bundle)), context, chunk)
model = edge_sdk.load(bundle, max_context=context, force=True, threads=2)
model.engine.prefill_chunk = max(3, chunk)
loaded = status()
text_ids = model.encode_prompt(EVAL_TEXT, raw=True)  # encoded once: the tokenizer's work is not the model's
ids = (text_ids * (1 + context // len(text_ids)))[:context - 8]
t0 = time.perf_counter()
logits = model.engine.forward(ids)
prefill_s = time.perf_counter() - t0
tok = int(numpy.argmax(logits))
for _ in range(8):
    tok = int(numpy.argmax(model.engine.forward([tok])))
after = status()
print(json.dumps({"context": context, "chunk": chunk, "prompt": len(ids), "estimate": need.as_dict(),
                  "before_mb": before["VmRSS"] / 2**20,
                  "load_peak_mb": (loaded["VmHWM"] - before["VmRSS"]) / 2**20,
                  "after_load_mb": (loaded["VmRSS"] - before["VmRSS"]) / 2**20,
                  "run_peak_mb": (after["VmHWM"] - before["VmRSS"]) / 2**20,
                  "after_run_mb": (after["VmRSS"] - before["VmRSS"]) / 2**20,
                  "prefill_tok_s": len(ids) / prefill_s}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--context", type=int, nargs="+", required=True)
    p.add_argument("--chunk", type=int, nargs="+", default=[512], help="prefill rows per pass (default 512)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the rows as JSON lines to this file")
    args = p.parse_args()
    if not Path("/proc/self/status").exists():
        p.error("this reads /proc/self/status: Linux or Android only")
    print(f"{args.bundle}")
    print("| context | chunk | estimate MB (load peak / running) | measured MB: load peak | run peak | estimate / "
          "measured | prefill tok/s |\n|---|---|---|---|---|---|---|")
    for _ in range(args.rounds):
        for context in args.context:
            for chunk in args.chunk:
                proc = subprocess.run([sys.executable, "-c", CHILD, str(args.bundle), str(context), str(chunk)],
                                      capture_output=True, text=True, timeout=3600)
                if proc.returncode:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return 1
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                e = row["estimate"]
                measured = max(row["load_peak_mb"], row["run_peak_mb"])
                print(f"| {context} | {chunk} | {e['total_mb']:.0f} ({e['load_peak_mb'] + e['tokenizer_mb']:.0f} / "
                      f"{e['weights_mb'] + e['kv_cache_mb'] + e['activations_mb'] + e['tokenizer_mb']:.0f}) | "
                      f"{row['load_peak_mb']:.0f} | {row['run_peak_mb']:.0f} | {e['total_mb'] / measured:.2f} | "
                      f"{row['prefill_tok_s']:.0f} |", flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps({"bundle": str(args.bundle), **row}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
