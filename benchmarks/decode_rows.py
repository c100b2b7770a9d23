"""Why a chat reply is run again as a prompt: one-row decode passes against many-row prompt passes.

For a prompt followed by a known continuation, compares the logits of each continuation position computed
(a) in one prompt pass over everything, (b) one token at a time (how a reply is decoded) and (c) two rows at a
time (the previous token again with the new one), and times (b) against (c) interleaved. If (b) were
bit-identical to (a), decoded tokens could stay in the cache as they are; (c) is, but costs decode speed.

    .venv/bin/python benchmarks/decode_rows.py --bundle BUNDLE [--rounds 8]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

PROMPT = "Tell me a story about a cat who learns to fly. Make it long."
CONTINUATION = (" Once upon a time, in a small village, there lived a curious cat named Whiskers who dreamed of "
                "flying above the rooftops.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    import edge_sdk

    model = edge_sdk.load(args.bundle, threads=args.threads)
    engine = model.engine
    ids = model.encode_prompt(PROMPT)
    out = model.tokenizer.encode(CONTINUATION)
    seq, p = ids + out, len(ids)
    engine.reset()
    full = engine.forward(seq, all_logits=True)[p:len(seq) - 1]  # row j: after out[j]
    engine.reset()
    engine.forward(ids)
    one = np.array([engine.forward([t]) for t in out[:-1]])
    engine.reset()
    engine.forward(ids)
    two = []
    for j, t in enumerate(out[:-1]):
        engine.rewind(1)
        two.append(engine.forward([seq[p - 1 + j], t]))
    two = np.array(two)
    print(f"{model.manifest['name']}: {len(full)} positions")
    for name, rows in (("one-row passes (decode)", one), ("two-row passes", two)):
        same = int((rows == full).all(axis=1).sum())
        agree = int((rows.argmax(1) == full.argmax(1)).sum())
        print(f"  {name}: max |logit difference| {np.abs(rows - full).max():.3g}, bit-identical rows {same}/{len(full)}, "
              f"same argmax {agree}/{len(full)}")

    rates = {1: [], 2: []}
    for _ in range(args.rounds):
        for rows in (1, 2):
            engine.reset()
            engine.forward(ids)
            t0 = time.perf_counter()
            for i in range(args.steps):
                if rows == 1:
                    engine.forward([100 + i])
                else:
                    engine.rewind(1)
                    engine.forward([99 + i, 100 + i])
            rates[rows].append(args.steps / (time.perf_counter() - t0))
    ratios = sorted(b / a for a, b in zip(rates[1], rates[2]))
    print(f"  decode steps/s: one-row {statistics.median(rates[1]):.1f} ({min(rates[1]):.1f}-{max(rates[1]):.1f}), "
          f"two-row {statistics.median(rates[2]):.1f} ({min(rates[2]):.1f}-{max(rates[2]):.1f}); two-row/one-row per "
          f"round: median {statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})")


if __name__ == "__main__":
    main()
