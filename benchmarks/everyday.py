"""Everyday questions: does a bundle answer as its fp32 export does, are the answers right, and what speed does it buy.

    .venv/bin/python benchmarks/everyday.py FP32_BUNDLE BUNDLE [BUNDLE ...] [--max-new-tokens 64] [--first-n 16]
        [--rounds 5] [--speed-tokens 128] [--only ID ...] [--no-speed] [--json OUT]

The first bundle is the reference: every other bundle's greedy answers are compared with its answers.
The question set is benchmarks/data/everyday.jsonl: facts, greetings, short tasks and a few
multi-sentence requests, each with regular expressions that a correct answer matches (all of them,
case-insensitive) and a note of what a correct answer contains.

For each bundle and question: the chat template with the question as one user turn, greedy decoding
(argmax, no repetition penalty), up to --max-new-tokens, stopping at the bundle's end-of-turn ids; the
same settings for every bundle. Reported per bundle:
- exact: the share of questions whose whole answer (its token ids, the stop included) equals the
  reference's;
- first N: the share whose first N generated tokens equal the reference's (all of them when an answer
  is shorter);
- correct: the share whose answer text matches the question's `correct_if` expressions;
- where an answer parts from the reference, the reference's own top-2 logit gap there (a gap of ~0.1 is
  a near-tie that any rounding can flip; several logits is a real error);
- decode and prefill tok/s: benchmarks/anchors/run_edgesdk.py in a fresh process per run (load, one
  warm-up generation, one timed: compare.py's chat prompt, --speed-tokens greedy tokens, EOS ignored),
  the bundles interleaved with the order rotating each round, medians with min-max over --rounds.

Prints a markdown table (and JSON with --json).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent
DEFAULT_SET = HERE / "data" / "everyday.jsonl"


@dataclass(frozen=True)
class Item:
    id: str
    kind: str  # fact, arithmetic, greeting, task, multi
    prompt: str
    correct_if: tuple[str, ...]  # regular expressions a correct answer matches, all of them (case-insensitive)
    note: str  # what a correct answer contains, in words

    def is_correct(self, text: str) -> bool:
        return all(re.search(rx, text, re.IGNORECASE) for rx in self.correct_if)


def load_items(path: Path = DEFAULT_SET, only: Sequence[str] = ()) -> list[Item]:
    items = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            items.append(Item(d["id"], d["kind"], d["prompt"], tuple(d["correct_if"]), d["note"]))
    if only:
        unknown = set(only) - {i.id for i in items}
        if unknown:
            raise SystemExit(f"unknown question ids: {sorted(unknown)}")
        items = [i for i in items if i.id in set(only)]
    return items


@dataclass
class Answer:
    ids: list[int]  # generated ids, the stop id included when the answer ended on one
    text: str
    gaps: list[float] = field(default_factory=list)  # top-1 minus top-2 logit at each generated position


def greedy_answer(model, prompt: str, max_new_tokens: int) -> Answer:
    """The bundle's greedy answer to `prompt` as one user turn (argmax, no penalty, stop at end of turn)."""
    import numpy as np

    eos = set(model.eos_token_ids)
    dec = model.decoder
    dec.reset()
    logits, _ = dec.prefill(model.encode_prompt(prompt))
    ids, gaps = [], []
    for i in range(max_new_tokens):
        top2 = np.partition(logits, -2)[-2:]
        gaps.append(float(top2[1] - top2[0]))
        token = int(np.argmax(logits))
        ids.append(token)
        if token in eos or i + 1 == max_new_tokens:
            break
        logits = dec.step(token)
    return Answer(ids, model.tokenizer.decode([t for t in ids if t not in eos]).strip(), gaps)


def answers(bundle: Path, items: Sequence[Item], max_new_tokens: int, threads: int,
            cache: Path | None = None) -> list[Answer]:
    """Greedy answers of `bundle`; with `cache`, kept per (bundle manifest, question, max_new_tokens), so a
    rerun with more bundles does not answer again with the ones it has seen (greedy answers are deterministic)."""
    import hashlib

    import edge_sdk

    key = hashlib.sha256((bundle / "edge_manifest.json").read_bytes()).hexdigest()[:16]
    file = cache / f"{key}-{max_new_tokens}.json" if cache else None
    seen = json.loads(file.read_text()) if file and file.is_file() else {}
    model = None
    out = []
    for it in items:
        if it.prompt not in seen:
            model = model or edge_sdk.load(bundle, threads=threads)
            seen[it.prompt] = asdict(greedy_answer(model, it.prompt, max_new_tokens))
        out.append(Answer(**seen[it.prompt]))
    if file:  # written whole then renamed: a run reading the cache meanwhile never sees half a file
        file.parent.mkdir(parents=True, exist_ok=True)
        part = file.with_name(f"{file.name}.{os.getpid()}.part")
        part.write_text(json.dumps(seen))
        os.replace(part, file)
    return out


def prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def agreement(ref: Sequence[Answer], ours: Sequence[Answer], items: Sequence[Item], first_n: int) -> dict:
    """How `ours` follows `ref` on the same items, and how often each is correct."""
    exact = first = 0
    parts = []
    for r, o in zip(ref, ours):
        n = prefix_len(r.ids, o.ids)
        exact += int(r.ids == o.ids)
        first += int(n >= min(first_n, len(r.ids), len(o.ids)) and
                     (n >= first_n or len(r.ids) == len(o.ids) == n))
        if r.ids != o.ids:
            parts.append({"at": n, "reference_gap": r.gaps[n] if n < len(r.gaps) else None})
    total = len(items)
    near = [p for p in parts if p["reference_gap"] is not None and p["reference_gap"] < 0.5]
    return {"questions": total, "exact": exact, "exact_rate": exact / total, f"first_{first_n}": first,
            "first_n_rate": first / total, "correct": sum(i.is_correct(o.text) for i, o in zip(items, ours)),
            "median_shared_prefix": statistics.median(prefix_len(r.ids, o.ids) for r, o in zip(ref, ours)),
            "divergences": len(parts), "divergences_at_reference_near_ties": len(near)}


def transformers_agreement(source: str, items: Sequence[Item], ref: Sequence[Answer], eos_ids: Sequence[int],
                           max_new_tokens: int) -> dict:
    """How many of the reference bundle's answers are transformers' own greedy answers (token for token), on the
    model `source` (an alias, folder or GGUF the reference was exported from): the reference is itself checked
    against a runtime we did not write."""
    from edge_sdk.exporters.sources import resolve
    from edge_sdk.exporters.testing import hf_greedy

    src = resolve(source)
    model, (tok, _, _) = src.load_model(), src.load_tokenizer()
    same = []
    for it, r in zip(items, ref):
        ids = tok.apply_chat_template([{"role": "user", "content": it.prompt}], add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        theirs = hf_greedy(model, ids, max_new_tokens, eos_ids)
        same.append(theirs == [t for t in r.ids if t not in set(eos_ids)])
    return {"source": source, "identical": sum(same), "questions": len(items),
            "differ": [it.id for it, s in zip(items, same) if not s]}


# ------------------------------------------------------------------------------------------------ speed
def speed(bundles: Sequence[Path], rounds: int, new_tokens: int, threads: int, log=sys.stderr) -> dict[str, dict]:
    """Decode/prefill tok/s per bundle: a fresh process per run (compare.py's runner), interleaved rounds."""
    sys.path.insert(0, str(HERE))
    from compare import DEFAULT_SYSTEM, DEFAULT_USER

    import edge_sdk

    names = [str(b) for b in bundles]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        ids = edge_sdk.load(bundles[0]).encode_prompt([{"role": "system", "content": DEFAULT_SYSTEM},
                                                       {"role": "user", "content": DEFAULT_USER}])
        ids_file = Path(tmp) / "prompt_ids.json"
        ids_file.write_text(json.dumps({"ids": ids, "new_tokens": new_tokens}))
        print(f"load average before: {os.getloadavg()[0]:.1f}", file=log)
        for r in range(rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                proc = subprocess.run([sys.executable, str(HERE / "anchors" / "run_edgesdk.py"), "--ids", str(ids_file),
                                       "--model", n, "--threads", str(threads), "--warmup", "1", "--reps", "1"],
                                      capture_output=True, text=True)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"{n} failed:\n{proc.stderr[-2000:]}")
                run = json.loads(lines[-1])
                rep = run["reps"][0]
                runs[n].append({"decode": (run["new_tokens"] - 1) / rep["decode_s"],
                                "prefill": run["prompt_tokens"] / rep["ttft_s"], "rss": run["peak_rss_mb"]})
                print(f"round {r + 1}/{rounds} {Path(n).name}: decode {runs[n][-1]['decode']:.1f} tok/s, "
                      f"prefill {runs[n][-1]['prefill']:.0f} tok/s", file=log)
        print(f"load average after: {os.getloadavg()[0]:.1f}", file=log)

    def summary(xs):
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}

    return {n: {"prompt_tokens": len(ids), "new_tokens": new_tokens,
                "decode": summary([x["decode"] for x in runs[n]]), "prefill": summary([x["prefill"] for x in runs[n]]),
                "peak_rss_mb": statistics.median(x["rss"] for x in runs[n])} for n in names}


# ------------------------------------------------------------------------------------------------ report
def describe(bundle: Path) -> dict:
    m = json.loads((bundle / "edge_manifest.json").read_text())
    q = m.get("quantization", {})
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    ppl = next((c["figures"].get("ppl_increase") for c in m.get("validation", {}).get("checks", [])
                if c["name"] == "perplexity"), None)
    return {"bundle": str(bundle), "name": m.get("name"), "recipe": q.get("recipe"), "size_mb": size / 1e6,
            "export_ppl_increase": ppl}


def table(rows: list[dict], first_n: int, baseline: dict | None = None) -> str:
    """Markdown; speeds as medians (min-max), and as ratios of medians to `baseline`'s row."""
    base = (baseline or {}).get("speed")
    vs = f" | decode, prefill vs {baseline['recipe']}" if base else ""
    out = [f"| recipe | exact answers = fp32 | first {first_n} tokens = fp32 | correct | decode tok/s | "
           f"prefill tok/s{vs} | peak RSS MB | size MB | export perplexity vs fp32 |",
           "|---|---|---|---|---|---|---|---|---|" + ("---|" if base else "")]
    for r in rows:
        a, s = r["agreement"], r.get("speed")
        q = a["questions"]
        if s:
            sp = (f"{s['decode']['median']:.1f} ({s['decode']['min']:.0f}–{s['decode']['max']:.0f}) | "
                  f"{s['prefill']['median']:.0f} ({s['prefill']['min']:.0f}–{s['prefill']['max']:.0f})")
            if base:
                sp += (f" | {s['decode']['median'] / base['decode']['median']:.2f}x, "
                       f"{s['prefill']['median'] / base['prefill']['median']:.2f}x")
            sp += f" | {s['peak_rss_mb']:.0f}"
        else:
            sp = "– | –" + (" | –" if base else "") + " | –"
        ppl = r["export_ppl_increase"]
        out.append(f"| {r['recipe']} | {a['exact']}/{q} ({a['exact_rate']:.0%}) | {a[f'first_{first_n}']}/{q} | "
                   f"{a['correct']}/{q} | {sp} | {r['size_mb']:.0f} | {'–' if ppl is None else f'{ppl:+.2%}'} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="+", type=Path, help="the fp32 reference first, then the bundles to compare")
    p.add_argument("--set", type=Path, default=DEFAULT_SET, help="questions, JSON lines (default: %(default)s)")
    p.add_argument("--only", nargs="*", default=(), help="question ids to run (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--first-n", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="speed rounds (each bundle once per round)")
    p.add_argument("--speed-tokens", type=int, default=128)
    p.add_argument("--no-speed", action="store_true", help="answers only")
    p.add_argument("--speed-baseline", type=int, default=1,
                   help="position of the bundle speeds are compared with (default 1: the first after the reference)")
    p.add_argument("--answers", action="store_true", help="print every answer that differs from the reference's")
    p.add_argument("--json", type=Path, help="write every figure and answer here")
    p.add_argument("--cache", type=Path, help="keep each bundle's answers in this folder and reuse them")
    p.add_argument("--transformers", metavar="SOURCE",
                   help="also check the reference's answers against transformers' greedy on SOURCE (e.g. the alias "
                        "smollm2-135m-instruct); needs the export extra")
    args = p.parse_args(argv)
    for b in args.bundles:
        if not (b / "edge_manifest.json").is_file():
            p.error(f"{b} is not an edge bundle (no edge_manifest.json)")
    items = load_items(args.set, args.only)
    all_answers = {}
    for b in args.bundles:
        print(f"answering {len(items)} questions with {b}", file=sys.stderr)
        all_answers[str(b)] = answers(b, items, args.max_new_tokens, args.threads, args.cache)
        a = agreement(all_answers[str(args.bundles[0])], all_answers[str(b)], items, args.first_n)
        print(f"  exact {a['exact']}/{len(items)}, first {args.first_n} {a['first_n_rate']:.0%}, "
              f"correct {a['correct']}/{len(items)}", file=sys.stderr)
    ref = all_answers[str(args.bundles[0])]
    hf = None
    if args.transformers:
        import edge_sdk

        eos = edge_sdk.load(args.bundles[0]).eos_token_ids
        hf = transformers_agreement(args.transformers, items, ref, eos, args.max_new_tokens)
        print(f"reference vs transformers: {hf['identical']}/{hf['questions']} answers identical", file=sys.stderr)
    speeds = {} if args.no_speed else speed(args.bundles, args.rounds, args.speed_tokens, args.threads)
    rows = []
    for b in args.bundles:
        ours = all_answers[str(b)]
        rows.append({**describe(b), "agreement": agreement(ref, ours, items, args.first_n), "speed": speeds.get(str(b)),
                     "answers": [{"id": i.id, "correct": i.is_correct(a.text), **asdict(a)} for i, a in zip(items, ours)]})
        if args.answers and b != args.bundles[0]:
            for i, r, a in zip(items, ref, ours):
                if r.ids != a.ids:
                    print(f"[{rows[-1]['recipe']}] {i.id}: fp32 {r.text[:90]!r}\n{'':>{len(i.id) + 4}}ours {a.text[:90]!r}")
    print(f"{len(items)} questions, greedy, {args.max_new_tokens} new tokens at most; reference {args.bundles[0]}"
          + (f" (its answers = transformers' on {hf['identical']}/{hf['questions']})" if hf else ""))
    print(table(rows, args.first_n, rows[min(args.speed_baseline, len(rows) - 1)]))
    if args.json:
        args.json.write_text(json.dumps({"questions": [asdict(i) for i in items], "max_new_tokens": args.max_new_tokens,
                                         "first_n": args.first_n, "rounds": args.rounds, "transformers": hf,
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
