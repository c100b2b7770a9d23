"""Time to first token of chat turns 1 to 5, with and without ChatSession.settle() between turns.

A reply is decoded one token at a time and is run again as part of the next turn's prompt (one-row and
many-row kernels give different numbers; see the ChatSession docstring). `settle()` does that right after
the reply, while the user reads; this measures what it moves off the next turn's time to first token, and
checks that it changes no answer. Both ways run interleaved in each round (the machine is noisy).

    .venv/bin/python benchmarks/chat_turns.py --bundle /work/bundles/smollm2-int4 --rounds 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

TURNS = [
    "Hi! Can you tell me a little about the sea?",
    "What lives in the deepest parts of it?",
    "How do those animals find food in the dark?",
    "Which of them is the strangest, in your opinion?",
    "Thanks! Can you sum up what we talked about in one sentence?",
]


def one_conversation(model, settle: bool, max_new_tokens: int) -> list[dict]:
    chat = model.chat()
    model.decoder.reset()  # every conversation starts from an empty cache, both ways
    out = []
    for text in TURNS:
        reply = chat.send(text, max_new_tokens=max_new_tokens)
        s = chat.last_stats
        row = {"ttft_s": s.ttft_s, "prompt": s.prompt_tokens, "prefilled": s.prefilled_tokens,
               "new": s.new_tokens, "reply": reply}
        if settle:
            t0 = time.perf_counter()
            row["settled"] = chat.settle()
            row["settle_s"] = time.perf_counter() - t0
        out.append(row)
    return out


def spread(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):.0f} ({ms[0]:.0f}-{ms[-1]:.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import edge_sdk

    model = edge_sdk.load(args.bundle, threads=args.threads)
    load_before = os.getloadavg()[0]
    runs = {"plain": [], "settle": []}
    for r in range(args.rounds):
        for mode in (("plain", "settle") if r % 2 == 0 else ("settle", "plain")):
            runs[mode].append(one_conversation(model, mode == "settle", args.max_new_tokens))
    same = all(p["reply"] == s["reply"] for a, b in zip(runs["plain"], runs["settle"]) for p, s in zip(a, b))
    result = {"bundle": model.manifest["name"], "rounds": args.rounds, "max_new_tokens": args.max_new_tokens,
              "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
              "answers_identical": same, "turns": []}
    for t in range(len(TURNS)):
        plain = [run[t] for run in runs["plain"]]
        settled = [run[t] for run in runs["settle"]]
        result["turns"].append({
            "turn": t + 1, "prompt_tokens": plain[0]["prompt"],
            "prefilled_plain": plain[0]["prefilled"], "prefilled_settled": settled[0]["prefilled"],
            "ttft_ms_plain": spread([x["ttft_s"] for x in plain]),
            "ttft_ms_settled": spread([x["ttft_s"] for x in settled]),
            "settle_ms_after": spread([x["settle_s"] for x in settled]), "settled_tokens": settled[0]["settled"]})
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['bundle']}: {args.rounds} rounds, replies up to {args.max_new_tokens} tokens, 1-min load "
          f"{result['load_before']} -> {result['load_after']}; answers identical both ways: {same}")
    print("turn | prompt | prefilled (no settle / settle) | TTFT ms, no settle | TTFT ms, after settle | "
          "settle() after the turn, ms (tokens)")
    for row in result["turns"]:
        print(f"{row['turn']} | {row['prompt_tokens']} | {row['prefilled_plain']} / {row['prefilled_settled']} | "
              f"{row['ttft_ms_plain']} | {row['ttft_ms_settled']} | {row['settle_ms_after']} ({row['settled_tokens']})")


if __name__ == "__main__":
    main()
