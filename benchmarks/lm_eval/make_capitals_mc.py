"""Build capitals_mc.jsonl, a four-way multiple-choice task for lm-evaluation-harness from benchmarks/data/capitals.csv
(the 201 capitals the router was calibrated on, from GeoNames): each country's capital and three other capitals drawn
with a fixed seed, the right one at a random place.

    python benchmarks/lm_eval/make_capitals_mc.py      # rewrites capitals_mc.jsonl next to this file
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    with open(HERE.parent / "data" / "capitals.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(20261207)
    capitals = sorted({r["capital"] for r in rows})
    with open(HERE / "capitals_mc.jsonl", "w", encoding="utf-8") as out:
        for r in rows:
            others = rng.sample([c for c in capitals if c != r["capital"]], 3)
            answer = rng.randrange(4)
            choices = others[:answer] + [r["capital"]] + others[answer:]
            out.write(json.dumps({"country": r["country"], "choices": choices, "answer": answer},
                                 ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
