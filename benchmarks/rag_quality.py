"""Answer quality with and without retrieval, on a collection of fictional documents.

    .venv/bin/python benchmarks/rag_quality.py --bundle DIR --embedder DIR [--index PATH] [-k 4] [--verbose] [--json]
    .venv/bin/python benchmarks/rag_quality.py --check-data      # the question set only, no model

Every question in tests/rag/data/questions.json is asked twice of the decoder bundle: (a) bare,
``model.generate(question)``, and (b) grounded, ``edge_sdk.rag.ask(model, index, question, k=k)``. A reply
is correct when it contains one of the accepted answers (case-insensitive; "1,874" = "1874"; curly
apostrophes straight). The documents are fictional, so the bare model should score near zero: what (b)
gains over (a) is what retrieval brings. Recall@k: the question's file is among the sources the
grounded prompt gave the model.

The index (--index, default a temporary file) is built from tests/rag/data/docs when it does not exist.
Device-side only: numpy + onnxruntime, never torch.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "rag" / "data"


# -- scoring (pure, no model) -------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Lower case, straight apostrophes, no thousands separators between digits ("1,874" -> "1874")."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"(?<=\d)[,\u202f\u00a0](?=\d{3}\b)", "", text)


def contains_answer(reply: str, answers: list[str]) -> bool:
    reply = normalise(reply)
    return any(normalise(a) in reply for a in answers)


def load_questions(path: Path) -> list[dict]:
    questions = json.loads(path.read_text(encoding="utf-8"))
    for i, q in enumerate(questions):
        missing = {"question", "answers", "file", "kind"} - set(q)
        if missing:
            raise SystemExit(f"{path}: question {i} lacks {sorted(missing)}")
    return questions


def check_data(questions: list[dict], docs: Path) -> list[str]:
    """Problems with the question set: a file that does not exist, an answer its file does not hold."""
    problems = []
    for i, q in enumerate(questions):
        doc = docs / q["file"]
        if not doc.is_file():
            problems.append(f"{i}: {q['file']} does not exist in {docs}")
        elif not contains_answer(doc.read_text(encoding="utf-8"), q["answers"]):
            problems.append(f"{i}: none of {q['answers']} is in {q['file']}")
    return problems


# -- the runs ------------------------------------------------------------------------------------------

def open_index(path: Path, embedder, docs: Path):
    """The index at `path`, built from `docs` first if the file does not exist yet."""
    from edge_sdk import rag

    fresh = not path.exists()
    index = rag.Index.open(path, embedder, create=True)
    if fresh:
        t0 = time.perf_counter()
        report = index.add([docs])
        if report.failed:
            raise SystemExit(f"could not index {report.failed}")
        print(f"indexed {len(index.files())} files ({len(index)} chunks) in {time.perf_counter() - t0:.1f} s -> {path}",
              file=sys.stderr)
    return index


def run(args) -> dict:
    import edge_sdk
    from edge_sdk import rag

    questions = load_questions(args.questions)
    model = edge_sdk.load(args.bundle)
    embedder = edge_sdk.load(args.embedder)
    with tempfile.TemporaryDirectory() as tmp:
        index = open_index(args.index or Path(tmp) / "rag_quality.index", embedder, args.docs)
        rows = []
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            bare = model.generate(q["question"], max_new_tokens=args.max_new_tokens)
            t1 = time.perf_counter()
            answer = rag.ask(model, index, q["question"], k=args.k, max_new_tokens=args.max_new_tokens)
            t2 = time.perf_counter()
            files = [Path(s.path).name for s in answer.sources]
            rows.append({
                "question": q["question"], "answers": q["answers"], "file": q["file"], "kind": q["kind"],
                "bare": {"reply": bare, "correct": contains_answer(bare, q["answers"]), "latency_s": t1 - t0},
                "grounded": {"reply": answer.text, "correct": contains_answer(answer.text, q["answers"]),
                             "latency_s": t2 - t1, "sources": [f"{Path(s.path).name}#{s.chunk_no}" for s in answer.sources],
                             "cited": [f"{Path(s.path).name}#{s.chunk_no}" for s in answer.cited],
                             "recalled": q["file"] in files},
            })
            if args.verbose:
                print(f"[{i + 1}/{len(questions)}] bare {'+' if rows[-1]['bare']['correct'] else '-'}  "
                      f"grounded {'+' if rows[-1]['grounded']['correct'] else '-'}  {q['question']}", file=sys.stderr)
    return {"bundle": str(args.bundle), "embedder": str(args.embedder), "k": args.k,
            "max_new_tokens": args.max_new_tokens, "questions": rows, "summary": summarise(rows, args.k)}


def summarise(rows: list[dict], k: int) -> dict:
    def mode(name):
        return {"accuracy": sum(r[name]["correct"] for r in rows) / len(rows),
                "mean_latency_s": statistics.fmean(r[name]["latency_s"] for r in rows)}

    return {"n": len(rows), "bare": mode("bare"), "grounded": mode("grounded"),
            f"recall@{k}": sum(r["grounded"]["recalled"] for r in rows) / len(rows)}


def markdown(result: dict, verbose: bool) -> str:
    s, k = result["summary"], result["k"]
    lines = [f"{s['n']} questions · bundle {Path(result['bundle']).name} · embedder {Path(result['embedder']).name}"
             f" · max_new_tokens {result['max_new_tokens']}", "",
             "| mode | accuracy | mean latency |", "|---|---|---|"]
    for name, label in (("bare", "bare question"), ("grounded", f"grounded (k={k})")):
        lines.append(f"| {label} | {s[name]['accuracy']:.0%} | {s[name]['mean_latency_s']:.2f} s |")
    lines += ["", f"retrieval recall@{k} (the answer's file among the sources): {s[f'recall@{k}']:.0%}"]
    if verbose:
        lines += ["", "| # | question | expected | bare | grounded | recalled | bare reply | grounded reply |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(result["questions"], 1):
            def cell(text):
                text = " ".join(text.split()).replace("|", "\\|")
                return text if len(text) <= 80 else text[:79] + "…"

            lines.append(f"| {i} | {cell(r['question'])} | {cell(r['answers'][0])} | {'✓' if r['bare']['correct'] else '✗'} | "
                         f"{'✓' if r['grounded']['correct'] else '✗'} | {'✓' if r['grounded']['recalled'] else '✗'} | "
                         f"{cell(r['bare']['reply'])} | {cell(r['grounded']['reply'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="decoder bundle folder")
    p.add_argument("--embedder", type=Path, help="embedder bundle folder")
    p.add_argument("--index", type=Path, help="index file (built from --docs if missing; default: a temporary one)")
    p.add_argument("-k", type=int, default=4, help="chunks retrieved per question (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--questions", type=Path, default=DATA / "questions.json")
    p.add_argument("--docs", type=Path, default=DATA / "docs")
    p.add_argument("--verbose", action="store_true", help="one row per question")
    p.add_argument("--json", action="store_true", help="print the full result as JSON instead of markdown")
    p.add_argument("--check-data", action="store_true", help="check that every answer is in its file, then exit")
    args = p.parse_args(argv)
    if args.check_data:
        problems = check_data(load_questions(args.questions), args.docs)
        print("\n".join(problems) or f"ok: every answer is in its file ({args.questions})")
        return 1 if problems else 0
    for name in ("bundle", "embedder"):
        folder = getattr(args, name)
        if folder is None or not (folder / "edge_manifest.json").is_file():
            p.error(f"--{name} must be an edge bundle folder (holding edge_manifest.json), got {folder}")
    if args.k < 1:
        p.error("-k must be >= 1")
    result = run(args)
    print(json.dumps(result, indent=1, ensure_ascii=False) if args.json else markdown(result, args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
