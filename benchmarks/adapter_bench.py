"""What a run-time LoRA adapter costs: decode speed with and without it, and the time to switch.

    .venv/bin/python benchmarks/adapter_bench.py --base bundles/smollm2 --switch bundles/smollm2-lora --adapter json
        [--tokens 128] [--rounds 5] [--threads 2] [--json]

Three decoders generate the same greedy continuation of one chat prompt (no end-of-text stop, so every
run decodes --tokens tokens), rounds interleaved on this shared machine, medians reported:
  base            the bundle exported without adapters
  slots, none     the bundle with adapter slots, no adapter active (rank-0 inputs: the base model's output)
  slots, ADAPTER  the same loaded model with the adapter active
Switch time: the first switch to the adapter (reads its file) and the median of 50 switches back and forth
(rebinding its matrices; the KV cache is dropped, which the next generation pays as a prefill).
The quality column is the adapter's own validation against PEFT, from the bundle's manifest.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

PROMPT = [{"role": "user", "content": "Tell me about the history of the printing press."}]


def _decode_tok_s(model, ids, n: int, adapter) -> float:
    from edge_sdk.runtime.generate import GenerationStats, generate_tokens
    from edge_sdk.runtime.sampling import make_sampler

    model.adapter = adapter
    model.decoder.truncate(0)
    stats = GenerationStats()
    for _ in generate_tokens(model.decoder, ids, max_new_tokens=n, sampler=make_sampler(0.0), eos_ids=[], stats=stats):
        pass
    return stats.decode_tok_s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the bundle exported without adapters")
    p.add_argument("--switch", required=True, help="the same model exported with --adapters")
    p.add_argument("--adapter", required=True, help="the adapter to measure")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import edge_sdk

    base = edge_sdk.load(args.base, threads=args.threads)
    switch = edge_sdk.load(args.switch, threads=args.threads)
    ids = base.encode_prompt(PROMPT)
    t = time.perf_counter()
    switch.adapter = args.adapter
    first_switch_ms = (time.perf_counter() - t) * 1e3
    switches = []
    for i in range(50):
        t = time.perf_counter()
        switch.adapter = None if i % 2 == 0 else args.adapter
        switches.append((time.perf_counter() - t) * 1e3)
    runs = {"base": (base, None), "slots, none": (switch, None), f"slots, {args.adapter}": (switch, args.adapter)}
    for model, adapter in runs.values():  # warm-up
        _decode_tok_s(model, ids, 16, adapter)
    speeds: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, (model, adapter) in runs.items():
            speeds[name].append(_decode_tok_s(model, ids, args.tokens, adapter))
    spec = switch.manifest["lora"]["adapters"][args.adapter]
    checks = {c["name"]: c["figures"] for c in (spec.get("validation") or {}).get("checks", [])}
    quality = {"ppl_vs_peft": checks.get("perplexity", {}).get("ppl_increase"),
               "top1_vs_peft": checks.get("logits", {}).get("top1_agreement")}
    base_tok_s = statistics.median(speeds["base"])
    rows = [{"decoder": k, "decode_tok_s": round(statistics.median(v), 1),
             "vs_base": round(statistics.median(v) / base_tok_s, 3)} for k, v in speeds.items()]
    out = {"adapter": args.adapter, "rank": spec.get("rank"), "targets": spec.get("targets"), "tokens": args.tokens,
           "rounds": args.rounds, "threads": args.threads, "rows": rows,
           "first_switch_ms": round(first_switch_ms, 2), "switch_ms_median": round(statistics.median(switches), 3),
           "switch_ms_max": round(max(switches), 3), "quality": quality,
           "adapter_file_mb": round(switch.manifest["files"][spec["file"]]["bytes"] / 1e6, 1)}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"adapter {args.adapter}: rank {out['rank']}, targets {', '.join(out['targets'] or [])}, file "
          f"{out['adapter_file_mb']} MB; {args.tokens} greedy tokens, {args.threads} threads, median of {args.rounds}\n")
    print("| decoder | decode tok/s | vs base | quality vs PEFT (ppl change, top-1) |")
    print("|---|---|---|---|")
    for r in rows:
        q = f"{quality['ppl_vs_peft']:+.2%}, {quality['top1_vs_peft']:.1%}" if args.adapter in r["decoder"] and \
            quality["ppl_vs_peft"] is not None else "-"
        print(f"| {r['decoder']} | {r['decode_tok_s']} | {r['vs_base']:.3f} | {q} |")
    print(f"\nswitch: first {out['first_switch_ms']} ms (reads the file), then median {out['switch_ms_median']} ms, "
          f"max {out['switch_ms_max']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
