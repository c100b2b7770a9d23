"""Query latency of the document index's exact top-k search, and its file size, by number of chunks.

    .venv/bin/python benchmarks/rag_latency.py [--sizes 1000 10000 100000] [--dim 384] [--k 5] [--json]

For each size, an index of random unit vectors (dim 384: all-MiniLM-L6-v2's) with ~800-character chunk
texts is built in a temporary folder (100 chunks per file, written as Index.add writes them), then:
- numpy: the top-k alone (matrix @ query, np.argpartition, sort of the k), the matrix in memory;
- search: Index.search_vector on an open index (numpy + reading the k chunks' rows from SQLite);
- first search: open the index and search once (loads every vector from SQLite), as after an app start.
Median and p95 in ms. Query embedding time is not included (it is the embedder's, the same at any size).
The file is in the OS page cache for "first search": a cold read from flash adds size / read speed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_sdk.rag import Chunk, Index

CHUNKS_PER_FILE = 100
TEXT = ("The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report. " * 9)[:800]


class _Stub:
    """Just enough of an embedder to create an index (vectors are written directly)."""

    def __init__(self, dim: int):
        self.dim, self.max_tokens, self.bundle_dir = dim, 254, None
        self.identity = {"name": "random", "fingerprint": "0" * 64}


def _ms(samples: list[float]) -> dict[str, float]:
    xs = sorted(samples)
    return {"median_ms": statistics.median(xs) * 1e3, "p95_ms": xs[min(len(xs) - 1, int(0.95 * len(xs)))] * 1e3,
            "runs": len(xs)}


def build(path: Path, n: int, dim: int, rng: np.random.Generator) -> None:
    with Index.open(path, _Stub(dim), create=True) as index:
        for f in range(0, n, CHUNKS_PER_FILE):
            m = min(CHUNKS_PER_FILE, n - f)
            vectors = rng.standard_normal((m, dim)).astype(np.float32)  # [m, dim]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            chunks = [Chunk(TEXT, 0, len(TEXT), 160) for _ in range(m)]
            index._store.replace_file(f"/bench/doc{f // CHUNKS_PER_FILE:05}.txt", f"{f:064x}", 1, chunks, vectors)


def measure(n: int, dim: int, k: int, queries: int, opens: int, rng: np.random.Generator) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.index"
        t0 = time.perf_counter()
        build(path, n, dim, rng)
        build_s = time.perf_counter() - t0
        qs = rng.standard_normal((queries, dim)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        first = []
        for i in range(opens):
            t0 = time.perf_counter()
            with Index.open(path) as index:
                index.search_vector(qs[i % queries], k)
                first.append(time.perf_counter() - t0)
        with Index.open(path) as index:
            index.search_vector(qs[0], k)  # load the matrix
            ids, matrix = index._vectors()
            numpy_only, search = [], []
            for q in qs:
                t0 = time.perf_counter()
                scores = matrix @ q
                top = np.argpartition(-scores, k - 1)[:k]
                top[np.argsort(-scores[top])]
                numpy_only.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                index.search_vector(q, k)
                search.append(time.perf_counter() - t0)
        return {"chunks": n, "dim": dim, "k": k, "file_mb": path.stat().st_size / 2**20, "build_s": build_s,
                "matrix_mb": matrix.nbytes / 2**20, "numpy": _ms(numpy_only), "search": _ms(search),
                "first_search": _ms(first)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="chunk counts")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--queries", type=int, default=100, help="timed queries per size (default 100)")
    p.add_argument("--opens", type=int, default=5, help="timed open + first search per size (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.dim, args.k, args.queries, args.opens, rng))
        print(f"{n} chunks done", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"numpy": np.__version__, "results": rows}))
        return 0
    print(f"| chunks | file MB | vectors MB | numpy top-{args.k} ms (median / p95) | search ms (median / p95) "
          f"| open + first search ms (median / p95) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['chunks']:,} | {r['file_mb']:.1f} | {r['matrix_mb']:.1f} "
              f"| {r['numpy']['median_ms']:.2f} / {r['numpy']['p95_ms']:.2f} "
              f"| {r['search']['median_ms']:.2f} / {r['search']['p95_ms']:.2f} "
              f"| {r['first_search']['median_ms']:.0f} / {r['first_search']['p95_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
