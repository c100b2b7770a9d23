"""Schema-valid rate over a suite of JSON Schemas, greedy and sampled, and what a matcher costs to build.

    .venv/bin/python benchmarks/structured_valid.py --bundle /work/bundles/smollm2-int4 [--seeds 3] [--json]

The suite is benchmarks/structured_schemas/schemas.jsonl: 33 extraction / classification tasks (a prompt and
a schema each: enums, bounded strings and numbers, patterns, formats, arrays with bounds, nested objects,
$defs/$ref, optional and nullable fields, oneOf, and one bare {"type": "object"}). Every answer is checked
with jsonschema (its FormatChecker on) - the reference we did not write. Reported:

  valid      answers that parse and validate / answers that finished (finish_reason "stop")
  finished   answers that finished within --max-new-tokens (the rest were cut off: finish_reason "length")
  matcher    time to build one request's matcher (grammar compile), median and max over the suite
  answer     wall time per answer
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
SUITE = Path(__file__).resolve().parent / "structured_schemas" / "schemas.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--seeds", type=int, default=3, help="sampled answers per schema (temperature 1)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import jsonschema

    import edge_sdk
    from edge_sdk.runtime.structured import backend, generation

    suite = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = edge_sdk.load(args.bundle)
    t0 = time.perf_counter()
    tok = backend.tokenizer_for(model)
    tok_s = time.perf_counter() - t0
    llg = backend.engine()
    build_ms, results = [], []
    for case in suite:
        rf = {"type": "json_schema", "json_schema": {"name": case["name"], "schema": case["schema"]}}
        spec = generation.prepare(model, {"response_format": rf})
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            backend.new_matcher(tok, llg.LLMatcher.grammar_from_lark(spec.grammar))
            times.append(1000 * (time.perf_counter() - t0))
        build_ms.append(statistics.median(times))
        for mode, settings in [("greedy", {})] + [(f"seed {s}", {"temperature": 1.0, "seed": s})
                                                   for s in range(args.seeds)]:
            t0 = time.perf_counter()
            reply = model.generate(case["prompt"], response_format=rf, max_new_tokens=args.max_new_tokens, **settings)
            seconds = time.perf_counter() - t0
            valid, error = False, ""
            if reply.finish_reason == "stop":
                try:
                    jsonschema.validate(json.loads(reply), case["schema"], format_checker=jsonschema.FormatChecker())
                    valid = True
                except (ValueError, jsonschema.ValidationError) as e:
                    error = str(e).splitlines()[0][:200]
            results.append({"name": case["name"], "mode": mode, "finish": reply.finish_reason, "valid": valid,
                            "error": error, "seconds": seconds, "tokens": model.last_stats.new_tokens,
                            "text": str(reply)[:300]})
            print(f"{case['name']:12s} {mode:7s} {reply.finish_reason:6s} valid={valid} {seconds:5.1f}s "
                  f"{str(reply)[:100]!r}", file=sys.stderr)
    summary = {"bundle": args.bundle, "schemas": len(suite), "llg_tokenizer_build_s": tok_s,
               "matcher_build_ms": {"median": statistics.median(build_ms), "max": max(build_ms),
                                    "min": min(build_ms)}}
    for label, rows in (("greedy", [r for r in results if r["mode"] == "greedy"]),
                        ("sampled", [r for r in results if r["mode"] != "greedy"])):
        done = [r for r in rows if r["finish"] == "stop"]
        summary[label] = {"answers": len(rows), "finished": len(done), "valid": sum(r["valid"] for r in done),
                          "answer_s_median": statistics.median(r["seconds"] for r in rows),
                          "invalid": [r for r in done if not r["valid"]],
                          "cut_off": [r["name"] for r in rows if r["finish"] != "stop"]}
    if args.json:
        print(json.dumps({**summary, "results": results}, indent=2, ensure_ascii=False))
        return
    print(f"{args.bundle}: {len(suite)} schemas; llguidance tokenizer {tok_s:.2f} s; matcher build median "
          f"{summary['matcher_build_ms']['median']:.2f} ms (min {summary['matcher_build_ms']['min']:.2f}, max "
          f"{summary['matcher_build_ms']['max']:.2f})")
    print("| decoding | answers | finished | schema-valid (of finished) | time per answer (median) | cut off |")
    print("|---|---|---|---|---|---|")
    for label in ("greedy", "sampled"):
        s = summary[label]
        print(f"| {label} | {s['answers']} | {s['finished']} | {s['valid']}/{s['finished']} "
              f"({100 * s['valid'] / max(1, s['finished']):.0f} %) | {s['answer_s_median']:.1f} s | "
              f"{', '.join(s['cut_off']) or '-'} |")
    for label in ("greedy", "sampled"):
        for r in summary[label]["invalid"]:
            print(f"INVALID {r['name']} {r['mode']}: {r['error']} {r['text']!r}")


if __name__ == "__main__":
    main()
