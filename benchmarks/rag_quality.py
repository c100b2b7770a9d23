"""Answer quality with and without retrieval, and abstention, on a collection of fictional documents.

    .venv/bin/python benchmarks/rag_quality.py --bundle DIR --embedder DIR [--index PATH] [-k 4] [--verbose] [--json]
    .venv/bin/python benchmarks/rag_quality.py --check-data      # the question sets only, no model

Every question in tests/rag/data/questions.json (answerable) is asked twice of the decoder bundle: (a) bare,
``model.generate(question)``, and (b) grounded, ``edge_sdk.rag.ask(model, index, question, k=k)``. A reply
is correct when it contains one of the accepted answers (case-insensitive; "1,874" = "1874"; curly
apostrophes straight). The documents are fictional, so the bare model should score near zero: what (b)
gains over (a) is what retrieval brings. Recall@k: the question's file is among the sources the
grounded prompt gave the model.

The questions of tests/rag/data/unanswerable.json (near the documents' topics, answers not in them) are
asked grounded only. Each grounded question is generated once with abstention off (the draft), and the
abstention decision of the evidence policy (--min-retrieval, --min-support; default edge_sdk.rag.Policy())
is applied to it: the same decision ask() takes, which skips generating when retrieval is weak. Reported:
answerable accuracy with abstention off ("today") and on, and the share of unanswerable questions answered
"Not in your documents.". --json carries every question's scores for benchmarks/rag_abstention.py, which
chooses the thresholds on one half of the questions and reports on the other.

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


def load_questions(path: Path, answerable: bool = True) -> list[dict]:
    questions = json.loads(path.read_text(encoding="utf-8"))
    need = {"question", "answers", "file", "kind"} if answerable else {"question", "file", "kind"}
    for i, q in enumerate(questions):
        missing = need - set(q)
        if missing:
            raise SystemExit(f"{path}: question {i} lacks {sorted(missing)}")
        q["answerable"] = answerable
    return questions


def check_data(questions: list[dict], docs: Path) -> list[str]:
    """Problems with the question sets: a file that does not exist, an answer its file does not hold, the
    same question twice. (That an unanswerable question's answer is *not* in the documents is checked by
    reading them: see the `near` note on each.)"""
    problems, seen = [], set()
    for i, q in enumerate(questions):
        if q["question"] in seen:
            problems.append(f"{i}: asked twice: {q['question']!r}")
        seen.add(q["question"])
        if q["file"] is None and not q["answerable"]:
            continue
        doc = docs / q["file"]
        if not doc.is_file():
            problems.append(f"{i}: {q['file']} does not exist in {docs}")
        elif q["answerable"] and not contains_answer(doc.read_text(encoding="utf-8"), q["answers"]):
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
    from edge_sdk.runtime.rag import evidence

    policy = rag.Policy(args.min_retrieval, args.min_support)
    questions = all_questions(args)
    # --rescore: the drafts of an earlier run (greedy, so the same text), scored again with today's evidence code.
    earlier = {}
    if args.rescore:
        before = json.loads(args.rescore.read_text(encoding="utf-8"))
        if Path(before["bundle"]).resolve() != args.bundle.resolve() or before["k"] != args.k:
            raise SystemExit(f"{args.rescore} was run with {before['bundle']} and k={before['k']}; rescore it with the same")
        earlier = {r["question"]: r for r in before["questions"]}
    model = edge_sdk.load(args.bundle)
    embedder = edge_sdk.load(args.embedder)
    with tempfile.TemporaryDirectory() as tmp:
        index = open_index(args.index or Path(tmp) / "rag_quality.index", embedder, args.docs)
        rows = []
        for i, q in enumerate(questions):
            row = {key: q.get(key) for key in ("question", "answers", "file", "kind", "answerable", "near")}
            if q["answerable"] and not args.no_bare and "bare" in earlier.get(q["question"], {}):
                row["bare"] = earlier[q["question"]]["bare"]
            elif q["answerable"] and not args.no_bare:
                t0 = time.perf_counter()
                bare = model.generate(q["question"], max_new_tokens=args.max_new_tokens)
                row["bare"] = {"reply": bare, "correct": contains_answer(bare, q["answers"]),
                               "latency_s": time.perf_counter() - t0}
            # What ask(abstain=False) does, with the generation replaceable by an earlier run's draft, and the
            # evidence step (embedding the sources' sentences) timed on its own.
            t0 = time.perf_counter()
            grounded = rag.prepare(model, index, q["question"], k=args.k, reply_tokens=args.max_new_tokens,
                                   evidence=False)
            t1 = time.perf_counter()
            grounded.evidence = evidence.gather(q["question"], grounded.sources, embedder)
            evidence_s = time.perf_counter() - t1
            if args.rescore:
                before = earlier[q["question"]]["grounded"]
                text, latency = before["draft"], before["latency_s"]
            else:
                text = model.generate([{"role": "user", "content": grounded.user_message}],
                                      max_new_tokens=args.max_new_tokens)
                latency = time.perf_counter() - t0
            draft = rag.after_generating(grounded, text, abstain=False)
            reason = evidence.decide(draft.retrieval, draft.support, policy)
            final = rag.NOT_IN_DOCUMENTS if reason else draft.text
            files = [Path(s.path).name for s in draft.sources]
            row["grounded"] = {
                "draft": draft.text, "reply": final, "abstained": reason,
                "draft_correct": bool(q["answerable"] and contains_answer(draft.text, q["answers"])),
                "correct": bool(q["answerable"] and not reason and contains_answer(draft.text, q["answers"])),
                "retrieval": draft.retrieval, "support": draft.support, "latency_s": latency,
                "evidence_s": evidence_s, "sentences": len(grounded.evidence.sentences),
                "sources": [{"source": f"{Path(s.path).name}#{s.chunk_no}", "similarity": s.score,
                             "evidence": s.evidence} for s in draft.sources],
                "cited": [f"{Path(s.path).name}#{s.chunk_no}" for s in draft.cited],
                "recalled": q["file"] in files,
                "alternatives": alternative_support(embedder, q["question"], draft),
            }
            rows.append(row)
            if args.verbose:
                g = row["grounded"]
                mark = "abstained" if reason else ("+" if g["correct"] else "-")
                print(f"[{i + 1}/{len(questions)}] {'answerable' if q['answerable'] else 'unanswerable'} {mark:9s} "
                      f"retrieval {g['retrieval']:.2f} support {g['support']:.2f}  {q['question']}", file=sys.stderr)
    return {"bundle": str(args.bundle), "embedder": str(args.embedder), "k": args.k,
            "max_new_tokens": args.max_new_tokens, "policy": {"min_retrieval": policy.min_retrieval,
                                                              "min_support": policy.min_support},
            "rescored": bool(args.rescore), "questions": rows, "summary": summarise(rows, args.k)}


def all_questions(args) -> list[dict]:
    limit = getattr(args, "limit", None)  # the first N of each set: a quick run, e.g. to time the evidence step
    return (load_questions(args.questions)[:limit]
            + (load_questions(args.unanswerable, answerable=False)[:limit] if args.unanswerable else []))


def alternative_support(embedder, question: str, answer) -> dict:
    """The support signals the evidence policy was compared with (benchmarks/rag_abstention.py): the
    share of the answer's new content words found in its cited sources (token overlap), and the answer's
    highest embedding similarity to a sentence of the sources, on the embedder's scale."""
    import numpy as np

    from edge_sdk.runtime.rag import evidence

    new = evidence.content_words(answer.text) - evidence.content_words(question)
    cited = answer.cited or answer.sources
    held = set().union(*(evidence.content_words(s.text) for s in cited)) if cited else set()
    overlap = len(new & held) / len(new) if new else 0.0
    sentences = [t for s in answer.sources for t in evidence.sentences(s.text)]
    if not sentences or not answer.text.strip():
        return {"token_overlap": overlap, "answer_similarity": 0.0}
    v = embedder.embed([answer.text] + sentences)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    similarity = float(evidence.scale_of(embedder)(float((v[1:] @ v[0]).max())))
    return {"token_overlap": overlap, "answer_similarity": similarity}


def summarise(rows: list[dict], k: int) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    grounded = [r["grounded"] for r in answerable]
    out = {"n": len(answerable), "n_unanswerable": len(unanswerable),
           "grounded": {"accuracy_no_abstention": _share(g["draft_correct"] for g in grounded),
                        "accuracy": _share(g["correct"] for g in grounded),
                        "abstained": _share(bool(g["abstained"]) for g in grounded),
                        "mean_latency_s": statistics.fmean(g["latency_s"] for g in grounded) if grounded else None},
           "evidence_s_median": statistics.median(r["grounded"]["evidence_s"] for r in rows) if rows else None,
           "sentences_median": statistics.median(r["grounded"]["sentences"] for r in rows) if rows else None,
           "latency_s_median": statistics.median(r["grounded"]["latency_s"] for r in rows) if rows else None,
           f"recall@{k}": _share(r["grounded"]["recalled"] for r in answerable),
           "unanswerable_abstained": _share(bool(r["grounded"]["abstained"]) for r in unanswerable)}
    if answerable and "bare" in answerable[0]:
        out["bare"] = {"accuracy": _share(r["bare"]["correct"] for r in answerable),
                       "mean_latency_s": statistics.fmean(r["bare"]["latency_s"] for r in answerable)}
    return out


def _share(flags) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def markdown(result: dict, verbose: bool) -> str:
    s, k = result["summary"], result["k"]
    g, n, nu = s["grounded"], s["n"], s["n_unanswerable"]
    p = result["policy"]
    lines = [f"{n} answerable + {nu} unanswerable questions · bundle {Path(result['bundle']).name} · embedder "
             f"{Path(result['embedder']).name} · max_new_tokens {result['max_new_tokens']} · min_retrieval "
             f"{p['min_retrieval']} · min_support {p['min_support']}", "",
             "| mode | answerable: correct | unanswerable: \"Not in your documents.\" | mean latency |", "|---|---|---|---|"]
    if "bare" in s:
        lines.append(f"| bare question | {s['bare']['accuracy'] * n:.0f}/{n} | – | {s['bare']['mean_latency_s']:.2f} s |")
    lines.append(f"| grounded (k={k}), abstention off | {g['accuracy_no_abstention'] * n:.0f}/{n} | 0/{nu} | "
                 f"{g['mean_latency_s']:.2f} s |")
    lines.append(f"| grounded (k={k}), abstention on | {g['accuracy'] * n:.0f}/{n} (abstained on {g['abstained'] * n:.0f}) | "
                 f"{(s['unanswerable_abstained'] or 0) * nu:.0f}/{nu} | |")
    lines += ["", f"retrieval recall@{k} (the answer's file among the sources): {s[f'recall@{k}']:.0%}",
              f"evidence step (embedding the sources' sentences, median {s['sentences_median']:.0f} per question): "
              f"median {1000 * s['evidence_s_median']:.0f} ms of the {s['latency_s_median']:.2f} s a grounded question takes "
              f"(median, generation included{'; the drafts were not generated in this run' if result.get('rescored') else ''})"]
    if verbose:
        lines += ["", "| # | question | expected | grounded | retrieval | support | draft |", "|---|---|---|---|---|---|---|"]
        for i, r in enumerate(result["questions"], 1):
            def cell(text):
                text = " ".join(str(text).split()).replace("|", "\\|")
                return text if len(text) <= 80 else text[:79] + "…"

            gr = r["grounded"]
            verdict = f"abstained ({gr['abstained']})" if gr["abstained"] else ("✓" if gr["correct"] else "✗")
            expected = r["answers"][0] if r["answerable"] else "(not in the documents)"
            lines.append(f"| {i} | {cell(r['question'])} | {cell(expected)} | {verdict} | {gr['retrieval']:.2f} | "
                         f"{gr['support']:.2f} | {cell(gr['draft'])} |")
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
    p.add_argument("--unanswerable", type=Path, default=DATA / "unanswerable.json",
                   help="questions whose answers are not in the documents (default: %(default)s)")
    p.add_argument("--min-retrieval", type=float, default=None, help="abstention threshold (default: Policy())")
    p.add_argument("--min-support", type=float, default=None, help="abstention threshold (default: Policy())")
    p.add_argument("--no-bare", action="store_true", help="skip asking the answerable questions without documents")
    p.add_argument("--rescore", type=Path, metavar="RESULT.json",
                   help="take the drafts (and bare replies) of this earlier --json run instead of generating, and "
                        "score them again (the evidence code changed, the greedy drafts did not)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="ask only the first N questions of each set (a quick run: the evidence step's time beside "
                        "generation's)")
    p.add_argument("--docs", type=Path, default=DATA / "docs")
    p.add_argument("--verbose", action="store_true", help="one row per question")
    p.add_argument("--json", action="store_true", help="print the full result as JSON instead of markdown")
    p.add_argument("--check-data", action="store_true", help="check that every answer is in its file, then exit")
    args = p.parse_args(argv)
    if args.check_data:
        problems = check_data(all_questions(args), args.docs)
        print("\n".join(problems) or f"ok: every answer is in its file, every file exists ({args.questions}, "
                                      f"{args.unanswerable})")
        return 1 if problems else 0
    for name in ("bundle", "embedder"):
        folder = getattr(args, name)
        if folder is None or not (folder / "edge_manifest.json").is_file():
            p.error(f"--{name} must be an edge bundle folder (holding edge_manifest.json), got {folder}")
    if args.k < 1:
        p.error("-k must be >= 1")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    from edge_sdk.rag import Policy

    default = Policy()
    args.min_retrieval = default.min_retrieval if args.min_retrieval is None else args.min_retrieval
    args.min_support = default.min_support if args.min_support is None else args.min_support
    result = run(args)
    print(json.dumps(result, indent=1, ensure_ascii=False) if args.json else markdown(result, args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
