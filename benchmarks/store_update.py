"""Bundles over the air: bytes a device downloads for a full pull and for an update, and the time to swap versions.

    .venv/bin/python benchmarks/store_update.py --bundle /work/bundles/smollm2-int4 \
        [--lora-work DIR | --lora-bundle DIR --lora NAME=PEFT_DIR] [--rounds 5] [--threads 2] [--json]

On this machine, over loopback (Python's http.server serving an `edge-sdk publish` folder):
  full            a fresh device pulls version 1 (every file)
  tokenizer       version 2 = version 1 with its tokenizer.json rewritten (same tokens, other bytes)
  adapter         (--lora-bundle) version 2 = a bundle exported with --adapters, plus one more adapter
                  added with `edge-sdk adapter add`; --lora-work DIR makes both (two seeded random rank-8
                  PEFT LoRAs on q/v of SmolLM2, and its int4 export with the first; needs the export extra,
                  ~20 min here) unless DIR holds them already
Bytes are the pull's own count of file bytes fetched (PullResult.bytes_downloaded) and of everything
received (index, listing, manifest included); they do not depend on the machine.

Swap: `Store.use` to the other version (its smoke prompt: load, hash every file, 4 greedy tokens; then the
pointer's rename), then what an app does next, `edge_sdk.load(store.path(name))`; rounds alternate between
the two versions, median and range reported. Quality column: the answer to a fixed prompt after the swap
equals the answer of the same version's bundle loaded directly (it must, byte for byte).

Server: the same swaps with `edge-sdk serve`'s reload (runtime/server/reload.py, uvicorn in this process):
`Store.use`, then POST /admin/reload while a 64-token request is generating; that request must complete,
and the next answer must be the new version's.
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

PROMPT = "Name the capital of France."


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(root: Path):
    handler = functools.partial(_Quiet, directory=str(root))
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


def lora_case(work: Path) -> tuple[Path, str]:
    """(a SmolLM2 int4 bundle exported with adapter "a", "b=PEFT_DIR" for `adapter add`), made once in `work`."""
    bundle, loras = work / "smollm2-lora", {"a": work / "lora-a", "b": work / "lora-b"}
    if not (bundle / "edge_manifest.json").is_file():
        import peft
        import torch

        from edge_sdk.exporters.export import export
        from edge_sdk.exporters.sources import resolve

        model = resolve("smollm2-135m-instruct").load_model()
        for seed, (name, out) in enumerate(loras.items(), start=1):
            torch.manual_seed(seed)
            cfg = peft.LoraConfig(r=8, lora_alpha=16, init_lora_weights=False, target_modules=["q_proj", "v_proj"])
            tuned = peft.get_peft_model(model, cfg)
            tuned.save_pretrained(out)
            model = tuned.unload()
        export("smollm2-135m-instruct", bundle, recipe="int4-b32", max_context=1024, adapters={"a": loras["a"]})
    return bundle, f"b={loras['b']}"


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


def measure_serve(url: str, name: str, bundles: dict[str, Path], work: Path, rounds: int, threads: int) -> dict:
    """The server's side: `edge-sdk serve NAME --store DIR`'s reload (POST /admin/reload) after `Store.use`, with a
    64-token request in flight; the answer after each reload compared with the version's own."""
    import socket
    import urllib.request

    import uvicorn

    import edge_sdk
    from edge_sdk.runtime.server.app import Server
    from edge_sdk.runtime.server.pool import ModelPool
    from edge_sdk.runtime.server.reload import Reloader
    from edge_sdk.store import Store

    store = Store(work / f"store-{name}", load_options={"threads": threads})
    store.use(name, "1")

    def load(path):
        return edge_sdk.load(path, threads=threads)

    server = Server(ModelPool([load(store.path(name))], 8), name, api_key="bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(Reloader(server, store, name, load, 1, log=lambda m: None).wrap(server.app),
                                        host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    threading.Thread(target=web.run, daemon=True).start()
    while not web.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"

    def call(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/json", "Authorization": "Bearer bench"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    def chat(max_tokens):
        return call("/v1/chat/completions", {"model": name, "max_tokens": max_tokens,
                                             "messages": [{"role": "user", "content": PROMPT}]})

    direct = {v: _answer(b, threads) for v, b in bundles.items()}
    use_s, reload_s, in_flight_ok, same, held = [], [], [], [], []
    try:
        for i in range(rounds):
            v = "2" if i % 2 == 0 else "1"
            t0 = time.perf_counter()
            store.use(name, v)
            use_s.append(time.perf_counter() - t0)
            done = {}
            flight = threading.Thread(target=lambda: done.update(r=chat(64)))
            flight.start()
            time.sleep(0.2)  # the request is generating when the reload comes
            result = call("/admin/reload", {})
            flight.join()
            reload_s.append(result["swap_s"])
            held.append(result["held_requests"])
            in_flight_ok.append(bool(done.get("r", {}).get("choices")))
            same.append(chat(16)["choices"][0]["message"]["content"] == direct[v])
    finally:
        web.should_exit = True
    return {"use_s": use_s, "reload_s": reload_s, "in_flight_completed": all(in_flight_ok), "same_answer": all(same),
            "held_requests": held}


def _spread(xs) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, help="the model bundle (version 1; version 2 changes its tokenizer.json)")
    p.add_argument("--lora-bundle", help="a bundle exported with --adapters (version 1 of the adapter case)")
    p.add_argument("--lora", metavar="NAME=PEFT_DIR", help="the adapter `adapter add` puts into version 2")
    p.add_argument("--lora-work", metavar="DIR", help="make (once) and use the adapter case's bundle and LoRAs here")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from edge_sdk.deploy.publish import publish

    if args.lora_work:
        Path(args.lora_work).mkdir(parents=True, exist_ok=True)
        bundle, spec = lora_case(Path(args.lora_work))
        args.lora_bundle, args.lora = str(bundle), spec

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
            for r, (case, versions) in zip(results, cases.items()):
                r["serve"] = measure_serve(url, case, versions, work, args.rounds, args.threads)
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
    print()
    print("| update | server: use (smoke + rename) | + POST /admin/reload (load, smoke, swap) | requests held |"
          " in-flight request completed | same answer after reload |")
    print("|---|---|---|---|---|---|")
    for r in results:
        v = r["serve"]
        print(f"| {r['name']} | {_spread(v['use_s'])} | {_spread(v['reload_s'])} | "
              f"{'yes' if all(v['held_requests']) else 'no' if not any(v['held_requests']) else 'some'} | "
              f"{'yes' if v['in_flight_completed'] else 'NO'} | {'yes' if v['same_answer'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
