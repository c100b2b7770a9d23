"""Shared by the three runners. Standard library only: each runner runs in its own venv.

A runner is executed as ``VENV/bin/python benchmarks/anchors/run_X.py --ids IDS.json --model PATH ...``
and prints exactly one JSON line on stdout (everything else goes to stderr). Protocol, the same for all:

- load the model (timed: ``load_s``), with ``--threads`` intra-op threads;
- ``--warmup`` untimed generations, then ``--reps`` timed ones, each from an empty KV cache:
    prefill = run the prompt ids, take argmax of the last position -> first token (``ttft_s``);
    decode  = ``new_tokens - 1`` single-token steps, greedy, EOS ignored (``decode_s``);
- ``peak_rss_mb`` = VmHWM of this process at the end (so it includes the Python interpreter);
  ``rss_anon_mb`` = its RssAnon then (memory no file backs: mapped weights are not in it).

With ``--ppl`` a runner measures quality instead of speed: it feeds the ids file's ``eval_ids`` one token
at a time (the decode path, the one generation uses), takes its own next-token logits after each, and
prints {"runtime", "ppl", "tokens"}: exp of the mean negative log-likelihood of ids[1:].
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Iterator

now = time.perf_counter


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--ids", required=True, help="JSON file written by benchmarks/compare.py (keys: ids, new_tokens)")
    p.add_argument("--model", required=True, help="model file or folder for this runtime")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed generations after loading (default 1)")
    p.add_argument("--reps", type=int, default=1, help="timed generations in this process (default 1)")
    p.add_argument("--new-tokens", type=int, default=None, help="override new_tokens from the ids file")
    p.add_argument("--ppl", action="store_true", help="print the perplexity of the ids file's eval_ids instead")
    return p.parse_args()


def read_ids(args: argparse.Namespace) -> tuple[list[int], int]:
    with open(args.ids) as f:
        spec = json.load(f)
    ids = [int(i) for i in spec["ids"]]
    n_new = int(args.new_tokens or spec["new_tokens"])
    if not ids or n_new < 2:
        raise SystemExit("need a non-empty prompt and at least 2 new tokens")
    return ids, n_new


def read_eval_ids(args: argparse.Namespace) -> list[int]:
    with open(args.ids) as f:
        return [int(i) for i in json.load(f)["eval_ids"]]


def _status_mb(field: str) -> float:
    """One memory line of this process's /proc/self/status (kB there), in MB (10^6 bytes); NaN where absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def peak_rss_mb() -> float:
    """VmHWM (peak resident set) of this process, in MB (10^6 bytes)."""
    return _status_mb("VmHWM")


def rss_anon_mb() -> float:
    """RssAnon of this process now, in MB: memory no file backs (what a phone's low-memory killer counts)."""
    return _status_mb("RssAnon")


def argmax(values) -> int:
    """Greedy choice; `values` is a numpy array (every runner has numpy)."""
    return int(values.argmax())


def perplexity(runtime: str, args: argparse.Namespace, load: Callable[[], object],
               step_logits: Callable[[object, list[int]], Iterator]) -> None:
    """`step_logits(model, ids)` yields the logits [vocab] after each of ids[:-1], fed one by one."""
    import numpy as np

    ids = read_eval_ids(args)
    model = load()
    nll, tops = [], []
    for target, logits in zip(ids[1:], step_logits(model, ids[:-1])):
        z = np.asarray(logits, dtype=np.float64).reshape(-1)
        top = z.max()
        tops.append(int(z.argmax()))
        nll.append(top + np.log(np.exp(z - top).sum()) - z[target])
    if len(nll) != len(ids) - 1:
        raise SystemExit(f"{runtime}: {len(nll)} logits for {len(ids) - 1} targets")
    # argmax: each position's top-1 next token, so two runtimes' logits can be compared position by position.
    out = {"runtime": runtime, "ppl": float(np.exp(np.mean(nll))), "tokens": len(ids), "argmax": tops}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def run(
    runtime: str,
    args: argparse.Namespace,
    load: Callable[[], object],
    generate: Callable[[object, list[int], int], tuple[list[int], float, float]],
    versions: dict[str, str],
    step_logits: Callable[[object, list[int]], Iterator] | None = None,
) -> None:
    """Time `load`, then warm-up + timed calls of `generate(model, ids, n_new)`.

    `generate` returns (tokens, ttft_s, decode_s): the n_new generated ids, the time from starting the
    prompt to having the first generated id, and the time of the n_new - 1 following single-token steps.
    With --ppl, measure `step_logits` instead (see `perplexity`).
    """
    if args.ppl:
        if step_logits is None:
            raise SystemExit(f"{runtime}: this runner cannot measure perplexity")
        perplexity(runtime, args, load, step_logits)
        return
    ids, n_new = read_ids(args)
    t0 = now()
    model = load()
    load_s = now() - t0
    for _ in range(args.warmup):
        generate(model, ids, n_new)
    reps = []
    tokens: list[int] = []
    for _ in range(args.reps):
        tokens, ttft, dec = generate(model, ids, n_new)
        if len(tokens) != n_new:
            raise SystemExit(f"{runtime}: generated {len(tokens)} tokens, expected {n_new}")
        reps.append({"ttft_s": ttft, "decode_s": dec})
    out = {
        "runtime": runtime,
        "pid": os.getpid(),
        "threads": args.threads,
        "prompt_tokens": len(ids),
        "new_tokens": n_new,
        "load_s": load_s,
        "reps": reps,
        "tokens": tokens,
        "peak_rss_mb": peak_rss_mb(),
        "rss_anon_mb": rss_anon_mb(),
        "versions": versions,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
