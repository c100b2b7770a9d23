"""Choose the abstention thresholds on one half of the questions, report on the other half.

    .venv/bin/python benchmarks/rag_abstention.py RESULT.json[+RESULT.json ...] ... [--max-loss 0] [--splits 200]

Each argument is one decoder bundle: the --json output of benchmarks/rag_quality.py, or several joined with
"+" (question sets asked of the same bundle, taken as one list). Every argument must hold the same questions
in the same order. A run holds every question's draft answer, whether it is correct, its retrieval and
support scores and the alternative support signals; nothing is generated here.

A signal abstains when retrieval < min_retrieval or signal < min_support. For each signal, the two
thresholds are chosen on the *calibration* questions (grid of 0.025 steps): the most unanswerable questions
abstained while the answerable ones lose at most --max-loss of their rows to abstention (default: none; all
bundles pooled; ties go to the lowest thresholds), then applied unchanged to the *test* questions:

- the fixed split: the answerable questions at even positions (in the order given: questions.json, then the
  next set's) and the unanswerable ones at even positions calibrate, the odd ones test (the shipped Policy()
  was chosen this way, on tests/rag/data and tests/rag/data/holdout);
- --splits random halves (stratified, seeded): the spread of the held-out figures.

Signals: "evidence" (edge_sdk.rag's: a relevant sentence holds a word the answer adds; "one threshold": the
same value for min_retrieval, the shipped form), "token overlap"
(the answer's new words found in its cited sources), "answer similarity" (the answer's embedding similarity to
the closest source sentence), "retrieval only" (no support check), and "chunk cosine only" (the best retrieved chunk's cosine to the question,
the index's own search score, as the one threshold).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SIGNALS = {"evidence, one threshold": lambda g: g["support"], "evidence": lambda g: g["support"],
           "token overlap": lambda g: g["alternatives"]["token_overlap"],
           "answer similarity": lambda g: g["alternatives"]["answer_similarity"], "retrieval only": lambda g: 1.0,
           "chunk cosine only": lambda g: g["sources"][0]["similarity"] if g["sources"] else 0.0}
CHUNK = "chunk cosine only"  # the index's own score of the best chunk, thresholded alone (no sentence, no answer)
GRID = np.round(np.arange(0.0, 1.0001, 0.025), 3)
# Support is the relevance of one of the sentences whose best is the retrieval score, so support <= retrieval:
# with min_retrieval == min_support the retrieval check only spares generating answers that would fail anyway.
TIED = "evidence, one threshold"


def load(args: list[str]) -> tuple[dict, list[str]]:
    """Arrays over all (bundle, question) rows: question id, answerable, draft correct, retrieval, signals."""
    cols: dict[str, list] = {"qid": [], "pos": [], "answerable": [], "correct": [], "retrieval": [], "bundle": []}
    cols.update({name: [] for name in SIGNALS})
    questions = None
    for b, arg in enumerate(args):
        rows = [r for part in arg.split("+") for r in json.loads(Path(part).read_text(encoding="utf-8"))["questions"]]
        asked = [r["question"] for r in rows]
        if questions is None:
            questions = asked
        elif asked != questions:
            raise SystemExit(f"{arg} asked other questions than {args[0]}: compare runs of the same question sets")
        position = {True: 0, False: 0}
        for i, r in enumerate(rows):
            g = r["grounded"]
            cols["qid"].append(i)
            cols["pos"].append(position[r["answerable"]])
            position[r["answerable"]] += 1
            cols["answerable"].append(r["answerable"])
            cols["correct"].append(g["draft_correct"])
            cols["retrieval"].append(g["retrieval"])
            cols["bundle"].append(b)
            for name, get in SIGNALS.items():
                cols[name].append(get(g))
    return {k: np.asarray(v) for k, v in cols.items()}, [Path(a.split("+")[0]).stem for a in args]


def abstains(d: dict, signal: str, t: tuple[float, float]) -> np.ndarray:
    return (d["retrieval"] < t[0]) | (d[signal] < t[1])


def fit(d: dict, signal: str, calibrate: np.ndarray, max_loss: float,
        fixed_retrieval: float | None = None) -> tuple[float, float]:
    """(min_retrieval, min_support) abstaining on the most unanswerable calibration rows, while turning at
    most max_loss of the answerable calibration rows from correct to abstained (accuracy points lost)."""
    answerable = d["answerable"] & calibrate
    allowed = int(np.floor(max_loss * answerable.sum() + 1e-9))
    unanswerable = ~d["answerable"] & calibrate
    correct = d["correct"] & calibrate
    best, best_t = -1, (0.0, 0.0)
    supports = GRID if signal != "retrieval only" else [0.0]
    retrievals = GRID if fixed_retrieval is None and signal != CHUNK else [fixed_retrieval or 0.0]
    for ts in supports:  # ascending: the first maximum is the lowest threshold
        for tr in ([ts] if signal == TIED else retrievals):
            a = abstains(d, signal, (tr, ts))
            if (a & correct).sum() > allowed:
                continue
            score = int((a & unanswerable).sum())
            if score > best:
                best, best_t = score, (float(tr), float(ts))
    return best_t


def held_out(d: dict, signal: str, t: tuple[float, float], test: np.ndarray, bundle: int | None = None) -> dict:
    sel = test if bundle is None else test & (d["bundle"] == bundle)
    a = abstains(d, signal, t)
    ans, una = d["answerable"] & sel, ~d["answerable"] & sel
    return {"answerable": int(ans.sum()), "correct_off": int((d["correct"] & sel).sum()),
            "correct_on": int((d["correct"] & sel & ~a).sum()), "unanswerable": int(una.sum()),
            "abstained": int((a & una).sum()),
            "loss_points": 100.0 * (d["correct"] & sel & a).sum() / max(1, ans.sum()),
            "abstained_share": (a & una).sum() / max(1, una.sum())}


def random_halves(d: dict, n: int, seed: int) -> list[np.ndarray]:
    """Calibration masks: half of the answerable and half of the unanswerable questions, all bundles' rows of
    a question on the same side."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        chosen = []
        for kind in (True, False):
            ids = np.unique(d["qid"][d["answerable"] == kind])
            chosen.append(rng.permutation(ids)[: len(ids) // 2])
        out.append(np.isin(d["qid"], np.concatenate(chosen)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="rag_quality.py --json outputs, one argument per bundle (join the "
                                              "runs of several question sets with +)")
    p.add_argument("--max-loss", type=float, default=0.0,
                   help="share of the calibration's answerable rows that may go from correct to abstained (default "
                        "%(default)s: with 25-30 answerable questions a 5%% budget is one or two answers, and a "
                        "threshold that spends it sits at the edge of the correct answers, losing more on the test half)")
    p.add_argument("--splits", type=int, default=200, help="random halves for the spread (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-retrieval", type=float, default=None,
                   help="keep the retrieval threshold at this value and choose only min_support")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    d, names = load(args.results)
    fixed = d["pos"] % 2 == 0
    halves = random_halves(d, args.splits, args.seed)
    report = {"max_loss": args.max_loss, "splits": args.splits, "bundles": names, "signals": {},
              "fixed_min_retrieval": args.min_retrieval}
    for signal in SIGNALS:
        t = fit(d, signal, fixed, args.max_loss, args.min_retrieval)
        per_bundle = {names[b]: held_out(d, signal, t, ~fixed, b) for b in range(len(names))}
        spread = [held_out(d, signal, fit(d, signal, cal, args.max_loss, args.min_retrieval), ~cal) for cal in halves]
        share = np.array([s["abstained_share"] for s in spread])
        loss = np.array([s["loss_points"] for s in spread])
        report["signals"][signal] = {
            "fixed_split": {"min_retrieval": t[0], "min_support": t[1], "test": per_bundle},
            "random_halves": {"abstained_median": float(np.median(share)), "abstained_p10": float(np.quantile(share, 0.1)),
                              "abstained_p90": float(np.quantile(share, 0.9)), "abstained_min": float(share.min()),
                              "loss_median": float(np.median(loss)), "loss_p90": float(np.quantile(loss, 0.9)),
                              "loss_max": float(loss.max()), "loss_over_5_points": float(np.mean(loss > 5.0 + 1e-9))}}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"thresholds chosen on the calibration half, figures on the test half; calibration may lose "
          f"{args.max_loss:.0%} of answerable rows; bundles {', '.join(names)}\n")
    print("| signal | min_retrieval | min_support | " + " | ".join(
        f"{n}: answerable correct off → on | {n}: unanswerable abstained" for n in names) + " |")
    print("|---|---|---|" + "---|---|" * len(names))
    for signal, r in report["signals"].items():
        f = r["fixed_split"]
        cells = [f"{t['correct_off']}/{t['answerable']} → {t['correct_on']}/{t['answerable']} | "
                 f"{t['abstained']}/{t['unanswerable']} ({t['abstained'] / max(1, t['unanswerable']):.0%})"
                 for t in f["test"].values()]
        print(f"| {signal} | {f['min_retrieval']} | {f['min_support']} | " + " | ".join(cells) + " |")
    print(f"\n{args.splits} random halves (thresholds refit on each calibration half, both bundles pooled on the test half):\n")
    print("| signal | unanswerable abstained: median [p10–p90] (min) | answerable loss, points: median, p90, max | "
          "splits losing > 5 points |")
    print("|---|---|---|---|")
    for signal, r in report["signals"].items():
        h = r["random_halves"]
        print(f"| {signal} | {h['abstained_median']:.0%} [{h['abstained_p10']:.0%}–{h['abstained_p90']:.0%}] "
              f"({h['abstained_min']:.0%}) | {h['loss_median']:.1f}, {h['loss_p90']:.1f}, {h['loss_max']:.1f} | "
              f"{h['loss_over_5_points']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
