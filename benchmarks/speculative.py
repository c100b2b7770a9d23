"""Prompt-lookup speculative decoding vs plain greedy on an extraction prompt (same bundle, one run).

    .venv/bin/python benchmarks/speculative.py BUNDLE [--rounds 5] [--new-tokens 96] [--threads 2]

Extraction and summarisation copy spans of the prompt, which is where drafts copied from the
context get accepted. Reports median decode tok/s of both, the speed-up, the acceptance rate,
and checks that the two texts are identical (they must be: verification is greedy).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

DOCUMENT = """\
Meeting notes, project Heron, 14 March 2026.
Attendees: Maria Lopez (product), Kenji Watanabe (firmware), Aisha Bello (QA), Tom Fischer (sales).
1. The firmware release 2.4.1 moves from 20 March to 27 March because the battery driver failed two soak tests.
2. Aisha Bello will rerun the soak tests on the new driver by 24 March and report to Kenji Watanabe.
3. Tom Fischer confirmed that the distributor in Lyon needs 1,200 units by 15 April.
4. Maria Lopez will update the public roadmap after the release is signed off.
5. The next review meeting is on 31 March at 10:00 in room B2.
"""
QUESTION = ("From the notes above, list every action item as 'Name: task (date)', one per line, "
            "copying names, tasks and dates exactly as written.")


def run(model, ids, new_tokens, speculative):
    model.decoder.reset()
    t0 = time.perf_counter()
    text = "".join(model.stream_ids(ids, max_new_tokens=new_tokens, speculative=speculative))
    s = model.last_stats
    return text, s, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import edge_sdk

    model = edge_sdk.load(args.bundle, threads=args.threads)
    ids = model.encode_prompt([{"role": "user", "content": DOCUMENT + "\n" + QUESTION}])
    run(model, ids, 8, False)  # warm-up
    plain, spec, texts, accept = [], [], set(), []
    for _ in range(args.rounds):
        t, s, _ = run(model, ids, args.new_tokens, False)
        plain.append(s.decode_tok_s)
        texts.add(t)
        t, s, _ = run(model, ids, args.new_tokens, True)
        spec.append(s.decode_tok_s)
        texts.add(t)
        accept.append(s.accepted / s.proposed if s.proposed else 0.0)
    out = {"bundle": args.bundle, "prompt_tokens": len(ids), "new_tokens_max": args.new_tokens, "rounds": args.rounds,
           "plain_decode_tok_s": round(statistics.median(plain), 1), "speculative_decode_tok_s": round(statistics.median(spec), 1),
           "speedup": round(statistics.median(spec) / statistics.median(plain), 2),
           "acceptance": round(statistics.median(accept), 3), "identical_text": len(texts) == 1, "text": sorted(texts)[0]}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0 if len(texts) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
