"""Latency and throughput of `edge-sdk serve` under concurrent clients on loopback.

    python benchmarks/server_load.py BUNDLE [--clients 16] [--instances 1 2] [--max-tokens 64]

Starts the server (one run per --instances value), sends one greedy chat request per client, all at
once, and reports p50/p95 latency, requests/s and generated tokens/s; every answer is checked
against a serial run of the same request (same text), and none may be lost.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))
from conftest import Served  # noqa: E402  (the same harness the tests use)


def _post(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def run(bundle, instances, clients, max_tokens, threads):
    server = Served(Path(bundle), "--instances", str(instances), "--max-queue", str(clients), *threads)
    prompts = [f"Tell me one fact about the number {i}." for i in range(clients)]
    body = lambda p: {"model": server.model_id, "max_tokens": max_tokens, "messages": [{"role": "user", "content": p}]}
    serial = {p: _post(server.url, body(p))["choices"][0]["message"]["content"] for p in prompts}
    latency, answers, tokens, errors = {}, {}, {}, []

    def client(p):
        t0 = time.perf_counter()
        try:
            r = _post(server.url, body(p))
            answers[p] = r["choices"][0]["message"]["content"]
            tokens[p] = r["usage"]["completion_tokens"]
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        latency[p] = time.perf_counter() - t0

    threads_ = [threading.Thread(target=client, args=(p,)) for p in prompts]
    t0 = time.perf_counter()
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    wall = time.perf_counter() - t0
    server.stop()
    lat = sorted(latency.values())
    return {"instances": instances, "clients": clients, "errors": errors, "lost": clients - len(answers),
            "same_as_serial": sum(answers.get(p) == serial[p] for p in prompts), "wall_s": wall,
            "p50_s": statistics.median(lat), "p95_s": lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))],
            "requests_per_s": clients / wall, "tokens_per_s": sum(tokens.values()) / wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, help="threads per model")
    args = p.parse_args(argv)
    threads = ["--threads", str(args.threads)] if args.threads else []
    print("| instances | clients | p50 latency | p95 latency | requests/s | tokens/s | same text as serial | lost |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.instances:
        r = run(args.bundle, n, args.clients, args.max_tokens, threads)
        print(f"| {n} | {r['clients']} | {r['p50_s']:.2f} s | {r['p95_s']:.2f} s | {r['requests_per_s']:.2f} | "
              f"{r['tokens_per_s']:.1f} | {r['same_as_serial']}/{r['clients']} | {r['lost']} |", flush=True)
        if r["errors"]:
            print("errors:", r["errors"][:3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
