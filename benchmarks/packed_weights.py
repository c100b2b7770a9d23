"""Packed MatMulNBits weights on the heap (as before) or mapped from the packed-weights cache (issue 26 item 3).

    .venv/bin/python benchmarks/packed_weights.py /work/bundles/smollm2-default /work/bundles/smollm2-int4 \\
        --rounds 5 [--new-tokens 64] [--json OUT.json]

Three ways to open each bundle, each in a fresh process, interleaved round by round with the order rotating:
- heap: `EDGE_SDK_PACKED_CACHE=off`, onnxruntime packs at every load into heap memory (the old behaviour);
- first: an empty cache folder, so this load packs and writes the entry (the first load on a device);
- mapped: a cache folder whose entry was written before the rounds (every later load).

Per run (runtime/engine.py FusedEngine, 2 threads): load seconds (the cache's hash check included), the
process's /proc/self/status after load (VmRSS, RssAnon, RssFile) and at the end (VmHWM = peak), the peak of
RssAnon while loading (sampled every millisecond by a thread), the logits of a prefill of the prompt (every
position) and greedy decode tok/s over --new-tokens single-token steps. Logits are compared bit for bit
against the heap run of the same bundle.

Decode speed across processes is at the mercy of a shared machine; the fairer A/B keeps both graphs in one
process and alternates blocks of steps from the same position:

    .venv/bin/python benchmarks/packed_weights.py --decode-ab /work/bundles/smollm2-default [BLOCKS=20] [STEPS=16]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("heap", "first", "mapped")


def status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def child(bundle: Path, ids: list[int], new_tokens: int, threads: int) -> dict:
    import numpy as np

    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.engine import FusedEngine
    from edge_sdk.runtime.providers import SessionConfig

    manifest = read_manifest(bundle)
    peak_anon = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak_anon[0] = max(peak_anon[0], status()["RssAnon"])
            time.sleep(0.001)

    before = status()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    config = SessionConfig(threads=threads)
    t0 = time.perf_counter()
    engine = FusedEngine(manifest, bundle, config)
    load_s = time.perf_counter() - t0
    done.set()
    sampler.join()
    after = status()
    logits = engine.forward(ids, all_logits=True)
    tok = int(np.argmax(logits[0, -1] if logits.ndim == 3 else logits[-1]))
    out_ids = [tok]
    t0 = time.perf_counter()
    for _ in range(new_tokens - 1):
        tok = int(np.argmax(engine.forward([tok])))
        out_ids.append(tok)
    decode_s = time.perf_counter() - t0
    end = status()
    packed = config.packed
    return {"load_s": load_s, "before": before, "after_load": after, "peak_anon_load_mb": peak_anon[0],
            "end": end, "decode_tok_s": (new_tokens - 1) / decode_s, "ids": out_ids,
            "logits_sha256": hashlib.sha256(np.ascontiguousarray(logits).tobytes()).hexdigest(),
            "cached": bool(packed and packed.cached), "built": bool(packed and packed.built),
            "reason": packed.reason if packed else "", "graph": str(packed.path) if packed else ""}


def decode_ab(bundle: Path, ids: list[int], blocks: int, steps: int, threads: int, cache: Path) -> list[float]:
    """Decode speed of the heap and the mapped graph in one process, alternating blocks of `steps` greedy steps
    from the same position (rewound after each block), so both see the same machine load. Returns the
    mapped/heap tok/s ratio of each block pair."""
    import numpy as np

    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.engine import FusedEngine
    from edge_sdk.runtime.providers import SessionConfig

    manifest = read_manifest(bundle)
    engines = {}
    for name, where in (("heap", "off"), ("mapped", str(cache))):
        config = SessionConfig(threads=threads, packed_cache=where)
        engines[name] = FusedEngine(manifest, bundle, config)
        assert (name == "mapped") == config.packed.cached, config.packed
    first = {name: int(np.argmax(e.forward(ids))) for name, e in engines.items()}
    ratios = []
    for b in range(blocks):
        speed = {}
        for name in (("heap", "mapped") if b % 2 == 0 else ("mapped", "heap")):
            e, tok = engines[name], first[name]
            t0 = time.perf_counter()
            for _ in range(steps):
                tok = int(np.argmax(e.forward([tok])))
            speed[name] = steps / (time.perf_counter() - t0)
            e.rewind(steps)
        ratios.append(speed["mapped"] / speed["heap"])
        print(f"block {b + 1}: heap {speed['heap']:.1f} tok/s, mapped {speed['mapped']:.1f} tok/s, "
              f"ratio {ratios[-1]:.3f}", file=sys.stderr, flush=True)
    return ratios


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--decode-ab":
        # --decode-ab BUNDLE [BLOCKS] [STEPS]: the one-process A/B of decode speed (see decode_ab)
        sys.path.insert(0, str(HERE))
        from scale_bench import prompt_ids

        bundle = Path(sys.argv[2])
        blocks, steps = (int(sys.argv[3]) if len(sys.argv) > 3 else 20), (int(sys.argv[4]) if len(sys.argv) > 4 else 16)
        with tempfile.TemporaryDirectory(prefix="packed_ab_") as cache:  # its entry is as big as the bundle x2
            ratios = decode_ab(bundle, prompt_ids(bundle, 98), blocks, steps, 2, Path(cache))
        print(f"{bundle.name}: decode mapped / heap over {blocks} alternating blocks of {steps} steps: "
              f"median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        args = json.loads(sys.argv[2])
        print(json.dumps(child(Path(args["bundle"]), args["ids"], args["new_tokens"], args["threads"])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--prompt-tokens", type=int, default=98)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, help="cache folders go here (default: a new temp folder)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from scale_bench import prompt_ids

    work = args.work or Path(tempfile.mkdtemp(prefix="packed_weights_"))
    work.mkdir(parents=True, exist_ok=True)

    def run(b: Path, variant: str) -> dict:
        env = dict(os.environ)
        cache = work / f"cache-{b.name}-{variant}"
        if variant == "heap":
            env["EDGE_SDK_PACKED_CACHE"] = "off"
        else:
            if variant == "first":
                shutil.rmtree(cache, ignore_errors=True)
            env["EDGE_SDK_PACKED_CACHE"] = str(cache)
        spec = {"bundle": str(b), "ids": ids[b], "new_tokens": args.new_tokens, "threads": args.threads}
        res = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                             text=True, timeout=args.timeout, env=env)
        if res.returncode != 0:
            sys.stderr.write(res.stderr[-3000:])
            raise SystemExit(f"{b} {variant}: child failed (exit {res.returncode})")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        if variant != "heap" and not out["cached"]:
            raise SystemExit(f"{b} {variant}: the cache was not used: {out['reason']}")
        files = [f for f in cache.rglob("*") if f.is_file()] if variant != "heap" else []
        out["entry_mb"] = sum(f.stat().st_size for f in files) / 1e6
        return out

    ids = {b: prompt_ids(b, args.prompt_tokens) for b in args.bundles}
    for b in args.bundles:  # the mapped variant's entry, written once before the rounds
        shutil.rmtree(work / f"cache-{b.name}-mapped", ignore_errors=True)
        run(b, "mapped")
    runs = {(b, v): [] for b in args.bundles for v in VARIANTS}
    jobs = [(b, v) for b in args.bundles for v in VARIANTS]
    for r in range(args.rounds):
        for b, v in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:
            out = run(b, v)
            runs[(b, v)].append(out)
            print(f"round {r + 1} {b.name} {v}: load {out['load_s']:.2f} s, anon after load "
                  f"{out['after_load']['RssAnon']:.0f} MB, peak {out['end']['VmHWM']:.0f} MB, "
                  f"decode {out['decode_tok_s']:.1f} tok/s", file=sys.stderr, flush=True)

    print(f"{args.rounds} rounds, {args.prompt_tokens}-token prompt, {args.new_tokens} greedy steps, "
          f"{args.threads} threads; median (min–max); memory in MB\n")
    print("| bundle | packed weights | load s | RssAnon after load | RssFile after load | peak RssAnon while loading "
          "| peak RSS (VmHWM) | RssAnon / RssFile at the end | decode tok/s | decode vs heap (per round) "
          "| cache entry MB "
          "| logits = heap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in args.bundles:
        heap = runs[(b, "heap")]
        for v in VARIANTS:
            outs = runs[(b, v)]
            ratios = [o["decode_tok_s"] / h["decode_tok_s"] for o, h in zip(outs, heap)]
            same = all(o["logits_sha256"] == heap[0]["logits_sha256"] and o["ids"] == heap[0]["ids"] for o in outs)
            print(f"| {b.name} | {v} | {spread([o['load_s'] for o in outs], '.2f')} "
                  f"| {spread([o['after_load']['RssAnon'] for o in outs], '.0f')} "
                  f"| {spread([o['after_load']['RssFile'] for o in outs], '.0f')} "
                  f"| {spread([o['peak_anon_load_mb'] for o in outs], '.0f')} "
                  f"| {spread([o['end']['VmHWM'] for o in outs], '.0f')} "
                  f"| {statistics.median([o['end']['RssAnon'] for o in outs]):.0f} / "
                  f"{statistics.median([o['end']['RssFile'] for o in outs]):.0f} "
                  f"| {spread([o['decode_tok_s'] for o in outs], '.1f')} | {spread(ratios, '.2f')} "
                  f"| {statistics.median([o['entry_mb'] for o in outs]):.0f} "
                  f"| {'bit-identical' if same else 'DIFFER'} |")
    if args.json:
        args.json.write_text(json.dumps({f"{b}|{v}": o for (b, v), o in runs.items()}, indent=1))
    if args.work is None:  # the cache entries are ~2x each bundle on disk
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
