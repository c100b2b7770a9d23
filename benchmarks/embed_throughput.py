"""Embedding throughput of an embedder bundle against sentence-transformers (torch), side by side.

    .venv/bin/python benchmarks/embed_throughput.py --bundle bundles/minilm [--bundle bundles/minilm-fp32]
        [--threads 2] [--chunks 256] [--rounds 3] [--json]

The texts are chunks of the RAG test documents (tests/rag/data/docs) cut by the index's own chunker at
the index's default size (200 tokens, 40 overlap), repeated to --chunks: what `edge-sdk index add`
embeds. Every engine embeds the same list with the same thread count, in batches of 32, rounds
interleaved (noisy shared machine: medians of the rounds, and ratios). The quality column is the
cosine of each bundle's vectors to sentence-transformers' (min over the texts).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent.parent / "tests" / "rag" / "data" / "docs"


def _chunks(embedder, n: int) -> list[str]:
    from edge_sdk.rag import chunk_text, read_document

    texts = []
    for path in sorted(DOCS.iterdir()):
        texts += [c.text for c in chunk_text(read_document(path), embedder.count_tokens, 200, 40)]
    return (texts * (n // len(texts) + 1))[:n]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", action="append", required=True, help="embedder bundle (repeatable)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunks", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    import edge_sdk
    from edge_sdk.exporters.sources import resolve

    torch.set_num_threads(args.threads)
    bundles = {Path(b).name: edge_sdk.load(b, threads=args.threads, kind="embedder") for b in args.bundle}
    first = next(iter(bundles.values()))
    texts = _chunks(first, args.chunks)
    tokens = sum(len(first.token_ids(t)) for t in texts)
    ref = SentenceTransformer(str(resolve("all-minilm-l6-v2").model_dir), device="cpu")
    engines = {name: (lambda e=e: e.embed(texts)) for name, e in bundles.items()}
    engines["sentence-transformers (torch)"] = lambda: ref.encode(texts, batch_size=32)
    for run in engines.values():  # warm-up: sessions, torch kernels
        run()
    times: dict[str, list[float]] = {n: [] for n in engines}
    for _ in range(args.rounds):
        for name, run in engines.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    reference = ref.encode(texts, batch_size=32)
    base = statistics.median(times["sentence-transformers (torch)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        cos = float((bundles[name].embed(texts) * reference).sum(1).min()) if name in bundles else 1.0
        rows.append({"engine": name, "chunks_per_s": round(len(texts) / med, 1), "tokens_per_s": round(tokens / med),
                     "vs_sentence_transformers": round(base / med, 2), "min_cosine_to_st": round(cos, 5)})
    meta = {"chunks": len(texts), "mean_tokens": round(tokens / len(texts), 1), "threads": args.threads,
            "rounds": args.rounds}
    if args.json:
        print(json.dumps({**meta, "rows": rows}))
        return 0
    print(f"{meta['chunks']} chunks of {meta['mean_tokens']} tokens on average, {args.threads} threads, median of "
          f"{args.rounds} rounds\n")
    print("| engine | chunks/s | tokens/s | vs sentence-transformers | min cosine to sentence-transformers |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['chunks_per_s']} | {r['tokens_per_s']} | {r['vs_sentence_transformers']}x "
              f"| {r['min_cosine_to_st']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
