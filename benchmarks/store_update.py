"""Bundles over the air: bytes a device downloads for a full pull and for an update, and the time to swap versions.

    .venv/bin/python benchmarks/store_update.py --bundle /work/bundles/smollm2-int4 \
        [--lora-bundle DIR --lora NAME=PEFT_DIR] [--rounds 5] [--threads 2] [--json]

On this machine, over loopback (Python's http.server serving an `edge-sdk publish` folder):
  full            a fresh device pulls version 1 (every file)
  tokenizer       version 2 = version 1 with its tokenizer.json rewritten (same tokens, other bytes)
  adapter         (--lora-bundle) version 2 = a bundle exported with --adapters, plus one more adapter
                  added with `edge-sdk adapter add`
Bytes are the pull's own count of file bytes fetched (PullResult.bytes_downloaded) and of everything
received (index, listing, manifest included); they do not depend on the machine.

Swap: `Store.use` to the other version (its smoke prompt: load, hash every file, 4 greedy tokens; then the
pointer's rename), then what an app does next, `edge_sdk.load(store.path(name))`; rounds alternate between
the two versions, median and range reported. Quality column: the answer to a fixed prompt after the swap
equals the answer of the same version's bundle loaded directly (it must, byte for byte).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

PROMPT = "What is the capital of France?"


def _serve(root: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/models/"


def _rehash(bundle: Path) -> None:
    from edge_sdk.exporters.bundle import write_manifest

    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("format", "schema_version", "files")})


def tokenizer_variant(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    tok = json.loads((dest / "tokenizer.json").read_text(encoding="utf-8"))
    (dest / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=1), encoding="utf-8")
    _rehash(dest)
    return dest


def adapter_variant(bundle: Path, dest: Path, spec: str) -> Path:
    from edge_sdk.exporters.adapters.add import add_adapter

    shutil.copytree(bundle, dest)
    name, path = spec.split("=", 1)
    add_adapter(dest, name, path)
    return dest


def _answer(path, threads: int) -> str:
    import edge_sdk

    return edge_sdk.load(path, threads=threads).generate(PROMPT, max_new_tokens=16)


def measure(url: str, name: str, bundles: dict[str, Path], work: Path, rounds: int, threads: int) -> dict:
    from edge_sdk.store import Store

    store = Store(work / f"store-{name}", load_options={"threads": threads})
    full = store.pull(url, name, version="1")
    update = store.pull(url, name, version="2")
    direct = {v: _answer(b, threads) for v, b in bundles.items()}
    use_s, load_s, same = [], [], []
    for i in range(rounds):
        v = "1" if i % 2 == 0 else "2"
        t0 = time.perf_counter()
        store.use(name, v)
        t1 = time.perf_counter()
        import edge_sdk

        model = edge_sdk.load(store.path(name), threads=threads)
        t2 = time.perf_counter()
        same.append(model.generate(PROMPT, max_new_tokens=16) == direct[v])
        del model
        use_s.append(t1 - t0)
        load_s.append(t2 - t1)
    return {
        "name": name,
        "full": {"bytes_downloaded": full.bytes_downloaded, "bytes_received": full.bytes_received,
                 "files": full.files_downloaded, "total_bytes": full.total_bytes, "seconds": full.seconds},
        "update": {"bytes_downloaded": update.bytes_downloaded, "bytes_received": update.bytes_received,
                   "files": update.files_downloaded, "reused_files": update.files_reused,
                   "total_bytes": update.total_bytes, "seconds": update.seconds},
        "swap": {"use_s": use_s, "load_s": load_s, "total_s": [a + b for a, b in zip(use_s, load_s)],
                 "same_answer": all(same), "answers": direct},
    }


def _spread(xs) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, help="the model bundle (version 1; version 2 changes its tokenizer.json)")
    p.add_argument("--lora-bundle", help="a bundle exported with --adapters (version 1 of the adapter case)")
    p.add_argument("--lora", metavar="NAME=PEFT_DIR", help="the adapter `adapter add` puts into version 2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from edge_sdk.deploy.publish import publish

    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        work = Path(tmp)
        site = work / "site" / "models"
        cases = {"tokenizer": {"1": Path(args.bundle), "2": tokenizer_variant(Path(args.bundle), work / "tok2")}}
        if args.lora_bundle:
            cases["adapter"] = {"1": Path(args.lora_bundle),
                                "2": adapter_variant(Path(args.lora_bundle), work / "lora2", args.lora)}
        for case, versions in cases.items():
            for v, b in versions.items():
                publish(b, site, name=case, version=v)
        httpd, url = _serve(work / "site")
        try:
            results = [measure(url, case, versions, work, args.rounds, args.threads) for case, versions in cases.items()]
        finally:
            httpd.shutdown()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| update | version size | full pull: downloaded | update: downloaded (received) | files fetched / reused |"
          " swap: use (smoke + rename) | + load | same answer |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        f, u, s = r["full"], r["update"], r["swap"]
        print(f"| {r['name']} | {u['total_bytes'] / 1e6:.1f} MB | {f['bytes_downloaded'] / 1e6:.1f} MB | "
              f"{u['bytes_downloaded'] / 1e6:.3f} MB ({u['bytes_received'] / 1e6:.3f} MB) | "
              f"{u['files']} / {u['reused_files']} | {_spread(s['use_s'])} | {_spread(s['load_s'])} | "
              f"{'yes' if s['same_answer'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
