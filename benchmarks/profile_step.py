"""Where one decode step of a bundle spends its time, by onnxruntime's own profiler.

    .venv/bin/python benchmarks/profile_step.py BUNDLE [--threads 2] [--prompt-tokens 100] [--steps 64]

Loads the bundle the way `edge_sdk.load` does (same session options, same engine), with onnxruntime's
profiler switched on; runs a prefill of --prompt-tokens ids and then --steps single-token steps; and
prints, for the decode steps only, the median wall time of a run and the mean time per step of each
operator type (kernel time as onnxruntime records it), with its node count. The difference between the
run's wall time and the sum of kernel times is what onnxruntime spends between kernels (dispatch,
allocation, thread hand-offs) plus the Python call.

Also the load: `edge_sdk.load`'s wall time and, from the same trace, the part onnxruntime spent reading the
model (`model_loading_uri`: the graph and its external weights) and initialising the session
(`session_initialization`: graph optimisation and packing the MatMulNBits weights); the rest is the runtime's
own (manifest, tokenizer, releasing mapped pages; its modules are imported before the clock starts).

--json prints the same as one JSON object. The profiler's raw trace is removed unless --keep-trace.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=100)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep-trace", action="store_true")
    return p.parse_args()


def main() -> int:
    args = _parse()
    import numpy as np
    import onnxruntime as ort

    import edge_sdk
    import edge_sdk.runtime.model  # noqa: F401  (imported before the load is timed, as benchmarks/anchors/run_edgesdk.py)

    trace_dir = Path(tempfile.mkdtemp(prefix="edge-sdk-profile-"))
    original = ort.InferenceSession

    def profiled(path, sess_options=None, **kw):  # the runtime's own options, plus the profiler
        sess_options.enable_profiling = True
        sess_options.profile_file_prefix = str(trace_dir / "trace")
        return original(path, sess_options=sess_options, **kw)

    ort.InferenceSession = profiled
    t0 = time.perf_counter()
    try:
        model = edge_sdk.load(args.bundle, threads=args.threads)
    finally:
        ort.InferenceSession = original
    load_s = time.perf_counter() - t0
    engine = model.engine
    rng = np.random.default_rng(0)
    ids = rng.integers(100, 1000, args.prompt_tokens).tolist()
    engine.reset()
    tok = int(np.argmax(engine.forward(ids)))
    walls = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        tok = int(np.argmax(engine.forward([tok])))
        walls.append(time.perf_counter() - t0)
    trace = Path(engine.session.end_profiling())
    events = json.loads(trace.read_text())

    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    decode = runs[-args.steps:]  # the first run is the prefill
    windows = [(r["ts"], r["ts"] + r["dur"]) for r in decode]
    per_op: dict[str, float] = collections.defaultdict(float)
    nodes: dict[str, set] = collections.defaultdict(set)
    starts = [w[0] for w in windows]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i < 0 or e["ts"] > windows[i][1]:
            continue
        op = e["args"].get("op_name", "?")
        per_op[op] += e["dur"]
        nodes[op].add(e["name"])
    n = len(decode)
    session = {e["name"]: e["dur"] / 1e6 for e in events
               if e.get("cat") == "Session" and e.get("name") in ("model_loading_uri", "session_initialization")}
    kernel_us = sum(per_op.values()) / n
    run_us = statistics.median(r["dur"] for r in decode)
    wall_ms = statistics.median(walls) * 1e3
    result = {
        "bundle": str(args.bundle), "threads": args.threads, "steps": n,
        "onnxruntime": ort.__version__,
        "load_s": round(load_s, 3),
        "load_phases_s": {k: round(v, 3) for k, v in session.items()},
        "wall_ms_median": round(wall_ms, 3),
        "run_us_median": round(run_us, 1),
        "kernel_us_mean": round(kernel_us, 1),
        "ops": {op: {"us": round(t / n, 1), "nodes": len(nodes[op])}
                for op, t in sorted(per_op.items(), key=lambda kv: -kv[1])},
    }
    if args.keep_trace:
        result["trace"] = str(trace)
    else:
        trace.unlink()
        os.rmdir(trace_dir)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{args.bundle}: {n} decode steps after a {args.prompt_tokens}-token prefill, {args.threads} threads, "
          f"onnxruntime {ort.__version__}")
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in session.items())
    print(f"load {load_s:.2f} s; onnxruntime: {phases}; the rest {load_s - sum(session.values()):.2f} s")
    print(f"step wall time (median): {wall_ms:.3f} ms = {1e3 / wall_ms:.1f} tok/s; onnxruntime run {run_us / 1e3:.3f} ms, "
          f"kernels {kernel_us / 1e3:.3f} ms ({100 * kernel_us / run_us:.0f} % of the run)")
    print(f"{'operator':<28}{'nodes':>6}{'us/step':>10}{'share':>8}")
    for op, v in result["ops"].items():
        print(f"{op:<28}{v['nodes']:>6}{v['us']:>10.1f}{100 * v['us'] / kernel_us:>7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
