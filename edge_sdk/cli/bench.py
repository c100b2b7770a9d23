"""edge-sdk bench BUNDLE: load time, time to first token, prefill and decode speed, peak memory.

The prompt is deterministic so runs compare: the chat template around a fixed system message and a
user message made of a fixed paragraph repeated until the prompt has at least --prompt-tokens
tokens; then tokens are dropped from the end of the user text (the template's closing tokens are
kept) to get exactly that many. --prompt-ids feeds given ids instead (what benchmarks/compare.py
gives every runtime). Decoding is greedy and ignores eos, so every run makes exactly --new-tokens.
"""
from __future__ import annotations

import argparse

from ._common import add_load_args

SYSTEM = "You are a helpful assistant running on a phone. Answer clearly and completely."
FILLER = ("Summarise the following notes for a colleague who missed the meeting. The team reviewed the "
          "battery tests from last week: the new power mode saved about twelve percent during video calls, "
          "but the camera app still wakes the processor too often. Two bugs in the settings screen were "
          "fixed, one remains open, and the release is planned for the end of the month. ")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure load time, time to first token, prefill/decode speed, memory",
                       description=__doc__.split("\n", 1)[1].strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  edge-sdk bench bundles/smol-int4\n"
                              "  edge-sdk bench bundles/smol-int4 --threads 4 --repeat 10 --json\n"
                              "  edge-sdk bench bundles/smol-int4 --prompt-ids ids.json --new-tokens 128")
    add_load_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt-tokens", type=int, metavar="N", help="prompt length in tokens (default 100)")
    src.add_argument("--prompt-ids", metavar="FILE",
                     help='JSON list of token ids (or an object with an "ids" list) to use as the prompt')
    p.add_argument("--new-tokens", type=int, default=128, metavar="N", help="tokens generated per run (default 128)")
    p.add_argument("--repeat", type=int, default=5, metavar="N", help="timed runs (default 5)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed runs first (default 1)")
    p.add_argument("--speculative", action="store_true",
                   help="decode with prompt-lookup speculative decoding (greedy-identical output)")
    p.add_argument("--num-draft", type=int, default=8, metavar="K", help="speculative draft length (default 8)")
    p.add_argument("--max-ngram", type=int, default=3, metavar="N", help="speculative lookup n-gram (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


# -- prompt ---------------------------------------------------------------------------------------
def _common_suffix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def bench_prompt_ids(model, n: int) -> list[int]:
    """Exactly `n` prompt ids, deterministic for a bundle (see the module docstring)."""
    if model.template is None:  # no chat template: the filler as plain text
        ids = model.encode_prompt(FILLER, raw=True)
        reps = n // max(1, len(ids)) + 2
        ids = model.encode_prompt(FILLER * reps, raw=True)
        return ids[:n]

    def encode(user: str) -> list[int]:
        return model.encode_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])

    # The template's closing tokens: what prompts with different user texts end with.
    tail = _common_suffix(encode("A"), encode("B"))
    shortest = len(encode("A"))
    if n < shortest:
        raise ValueError(f"--prompt-tokens must be at least {shortest} (the chat template around a one-token "
                         f"message), got {n}")
    per = max(1, len(encode(FILLER)) - shortest)
    reps = n // per + 2
    while True:
        ids = encode(FILLER * reps)
        if len(ids) >= n:
            break
        reps *= 2
    return ids[:n - tail] + ids[len(ids) - tail:]


def read_prompt_ids(path: str) -> list[int]:
    import json

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    ids = data.get("ids") if isinstance(data, dict) else data
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ValueError(f"{path} must hold a non-empty JSON list of token ids (or an object with an \"ids\" list)")
    return ids


# -- measurement ----------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (10^6 bytes, like benchmarks/compare.py)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KiB elsewhere


def bundle_mb(path) -> float:
    from pathlib import Path

    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def _threads(model, requested: int | None) -> int | None:
    """The intra-op thread count the session really uses (0 = onnxruntime's default)."""
    engine = model.engine
    session = getattr(engine, "session", None)
    if session is None and getattr(engine, "graphs", None):
        session = next(iter(engine.graphs.values())).session
    try:
        return session.get_session_options().intra_op_num_threads
    except AttributeError:
        return requested


def _spread(values: list[float]) -> dict[str, float]:
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def one_run(model, ids: list[int], new_tokens: int, speculative: dict | None):
    """Generate exactly `new_tokens` greedy tokens after `ids` from an empty cache; the run's stats."""
    from edge_sdk.runtime.generate import GenerationStats, generate_tokens
    from edge_sdk.runtime.sampling import make_sampler
    from edge_sdk.runtime.speculative import SpeculativeStats, generate_tokens_speculative

    model.decoder.reset()  # otherwise the prompt would be reused from the previous run's cache
    if speculative is not None:
        stats = SpeculativeStats()
        tokens = generate_tokens_speculative(model.decoder, ids, max_new_tokens=new_tokens, eos_ids=(),
                                             stats=stats, **speculative)
    else:
        stats = GenerationStats()
        tokens = generate_tokens(model.decoder, ids, max_new_tokens=new_tokens, sampler=make_sampler(0.0),
                                 eos_ids=(), stats=stats)
    for _ in tokens:
        pass
    return stats


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time

    from ._common import load_model

    try:
        for name, lo in (("--new-tokens", 1), ("--repeat", 1), ("--warmup", 0)):
            value = getattr(args, name[2:].replace("-", "_"))
            if value < lo:
                raise ValueError(f"{name} must be >= {lo}, got {value}")
        given = read_prompt_ids(args.prompt_ids) if args.prompt_ids else None
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ._common import progress_printer

    show = progress_printer(args.quiet) or (lambda message: None)
    show(f"loading {args.bundle}")
    t0 = time.perf_counter()
    model = load_model(args)
    load_s = time.perf_counter() - t0
    spec = {"num_draft": args.num_draft, "max_ngram": args.max_ngram} if args.speculative else None
    try:
        ids = given if given is not None else bench_prompt_ids(model, args.prompt_tokens or 100)
        # Plain decoding holds prompt + new - 1 tokens when it yields the last one.
        if len(ids) + args.new_tokens - 1 > model.max_context:
            raise ValueError(f"prompt ({len(ids)}) + new tokens ({args.new_tokens}) - 1 must be <= the bundle's "
                             f"maximum context of {model.max_context}")
        for i in range(args.warmup):
            show(f"warm-up run {i + 1}/{args.warmup}")
            one_run(model, ids, args.new_tokens, spec)
        runs = []
        for i in range(args.repeat):
            runs.append(one_run(model, ids, args.new_tokens, spec))
            show(f"run {i + 1}/{args.repeat}: TTFT {runs[-1].ttft_s * 1000:.0f} ms, decode {runs[-1].decode_tok_s:.1f} tok/s")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = runs[-1]
    report = {
        "bundle": str(args.bundle), "recipe": (model.manifest.get("quantization") or {}).get("recipe"),
        "threads": _threads(model, args.threads), "prompt_tokens": len(ids), "new_tokens": last.new_tokens,
        "repeat": args.repeat, "warmup": args.warmup, "load_s": load_s,
        "ttft_s": _spread([s.ttft_s for s in runs]),
        "prefill_tok_s": _spread([s.prefill_tok_s for s in runs]),
        "decode_tok_s": _spread([s.decode_tok_s for s in runs]),
        "peak_rss_mb": peak_rss_mb(), "bundle_mb": bundle_mb(args.bundle),
        # Drafting is deterministic (greedy), so every run proposes and accepts the same tokens.
        "speculative": {**spec, **last.speculative_summary()} if spec else None,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    _print_table(report)
    return 0


def _print_table(r: dict) -> None:
    print(f"bundle        {r['bundle']} ({r['recipe']}, {r['bundle_mb']:.1f} MB on disk)")
    print(f"setup         {r['threads']} threads, prompt {r['prompt_tokens']} tokens, {r['new_tokens']} new tokens, "
          f"{r['repeat']} runs after {r['warmup']} warmup")
    print(f"load          {r['load_s']:.2f} s")
    print(f"{'':14}{'median':>10}{'min':>10}{'max':>10}")
    for label, key, scale, fmt in (("TTFT ms", "ttft_s", 1000, ".0f"), ("prefill tok/s", "prefill_tok_s", 1, ".1f"),
                                   ("decode tok/s", "decode_tok_s", 1, ".1f")):
        v = r[key]
        print(f"{label:14}" + "".join(f"{v[k] * scale:>10{fmt}}" for k in ("median", "min", "max")))
    print(f"peak RSS      {r['peak_rss_mb']:.0f} MB")
    s = r["speculative"]
    if s:
        print(f"speculative   {s['accepted']}/{s['proposed']} draft tokens accepted ({s['acceptance'] * 100:.0f}%), "
              f"{s['tokens_per_forward']:.2f} tokens per forward pass (draft {s['num_draft']}, "
              f"n-gram {s['max_ngram']})")
