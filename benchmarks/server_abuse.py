"""`edge-sdk serve` under abuse: do 16 normal clients keep their usual latency while one client sends the worst
inputs of issue 24? One server, rounds interleaved calm / flood / abused / calm / flood / abused ...

    python benchmarks/server_abuse.py BUNDLE [--clients 16] [--rounds 3] [--requests 2] [--max-tokens 32]

Normal clients: each sends `--requests` greedy chat requests one after the other (all clients at once); every
answer is compared with a serial run of the same request (the quality column: the abuse must not change it).
The abuser, in abused rounds only, loops over:
  huge       a 3.9 MB chat body announced by Content-Length         (413 before reading)
  chunked    a 64 MB chunked body (no Content-Length)                (413 once the cap is read)
  big prompt a 247 KB prompt, just under the body cap, far over the context (400 before tokenizing)
  deep JSON  200 000 nested arrays                                   (400)
  messages   5 000 messages                                          (400)
  long stops four 60 000-character stop strings                      (400)
  hang-up    a valid request whose client leaves at once             (its queue place is given back)
and keeps one slow-drip body going (a byte every 0.2 s), which the server cuts off after 30 s (408).
The control, in flood rounds: the same client loops over GET /health as fast as it can, the cheapest request
there is. If abused rounds cost the others no more than flood rounds, the worst inputs cost no more than any
request: what is left is the price of the request rate, which no input check can lower.
/health is probed every 0.1 s. The server's peak RSS (psutil) is sampled every 0.05 s.

`--python PY --server-cwd DIR` runs another checkout's server (e.g. /work/main/.venv/bin/python, /work/main) for a
before/after.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import psutil

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, python: str, bundle: str, *args: str, cwd: str | None = None):
        self.port = free_port()
        self.proc = subprocess.Popen([python, "-m", "edge_sdk", "serve", os.path.abspath(bundle), "--port",
                                      str(self.port), *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.time() + 180
        while True:
            try:
                self.model_id = self.get("/health")[1]["model"]
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"the server did not start: {self.proc.stderr.read()[-2000:]}")
                time.sleep(0.2)
        self.ps = psutil.Process(self.proc.pid)

    def conn(self, timeout=600) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str):
        c = self.conn(30)
        c.request("GET", path)
        r = c.getresponse()
        out = r.status, json.loads(r.read())
        c.close()
        return out

    def post(self, body, timeout=600):
        c = self.conn(timeout)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        c.request("POST", "/v1/chat/completions", data, {"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.status, r.read()
        c.close()
        return out

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.proc.stderr.read()


def raw(port: int, head: bytes, body: bytes = b"", chunked_total: int = 0, hang_up: bool = False):
    """A request sent by hand; its status, or None if the server closed the connection first."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    try:
        sock.sendall(head)
        if chunked_total:
            piece = b"x" * 65536
            frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
            for _ in range(chunked_total // len(piece)):
                sock.sendall(frame)
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(body)
        if hang_up:
            return "hang-up"
        answer = sock.recv(4096)
        return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else None
    except (BrokenPipeError, ConnectionResetError):
        return None
    except TimeoutError:  # socket.timeout: no answer within 120 s (a server that froze)
        return "timeout"
    finally:
        sock.close()


def abuse_cases(server: Server) -> dict:
    """name -> a function sending one such request (its status, or None if the server closed the connection)."""
    ok = {"model": server.model_id, "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
    # 3.9 MB: under the chat template's 4 M-character cap, so a server without a body cap tokenizes it
    huge = json.dumps({**ok, "messages": [{"role": "user", "content": "tell me more " * 300_000}]}).encode()
    big_prompt = json.dumps({**ok, "messages": [{"role": "user", "content": "tell me more " * 19_000}]}).encode()
    deep = json.dumps(ok)[:-1].encode() + b', "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    many = json.dumps({**ok, "messages": ok["messages"] * 5000}).encode()
    stops = json.dumps({**ok, "stop": ["s" * 60_000] * 4}).encode()
    valid = json.dumps(ok).encode()

    def length(body):
        return HEAD + b"Content-Length: %d\r\n\r\n" % len(body)

    cases = {
        "huge": lambda: raw(server.port, length(huge), huge),
        "chunked": lambda: raw(server.port, HEAD + b"Transfer-Encoding: chunked\r\n\r\n", chunked_total=64 << 20),
        "big prompt": lambda: raw(server.port, length(big_prompt), big_prompt),
        "deep JSON": lambda: raw(server.port, length(deep), deep),
        "messages": lambda: raw(server.port, length(many), many),
        "long stops": lambda: raw(server.port, length(stops), stops),
        "hang-up": lambda: raw(server.port, length(valid), valid, hang_up=True),
    }
    return cases


def health(server: Server):
    return raw(server.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")


def abuser(server: Server, stop: threading.Event, counts: dict):
    cases = abuse_cases(server)

    def drip():
        while not stop.is_set():
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=120)
            try:
                sock.sendall(HEAD + b"Content-Length: 100000\r\n\r\n")
                sock.setblocking(False)
                answer = b""
                while not stop.is_set() and not answer:
                    try:
                        sock.send(b"[")
                        answer = sock.recv(4096)
                    except BlockingIOError:
                        time.sleep(0.2)
                    except OSError:
                        break
                status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else None
                counts[("slow drip", status)] = counts.get(("slow drip", status), 0) + 1
            finally:
                sock.close()

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    while not stop.is_set():
        for name, case in cases.items():
            if stop.is_set():
                break
            status = case()
            counts[(name, status)] = counts.get((name, status), 0) + 1
    dripper.join(60)


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))] if v else float("nan")


def flooder(server: Server, stop: threading.Event, counts: dict):
    while not stop.is_set():  # a connection per request, as the abuser's
        status = health(server)
        counts[("health", status)] = counts.get(("health", status), 0) + 1


def per_case(server: Server, n: int) -> list[dict]:
    """Server CPU per request of each kind, `n` of each one after the other on an idle server."""
    out = []
    for name, case in {"GET /health": lambda: health(server), **abuse_cases(server)}.items():
        cpu0, t0, statuses = sum(server.ps.cpu_times()[:2]), time.perf_counter(), {}
        for _ in range(n):
            status = case()
            statuses[status] = statuses.get(status, 0) + 1
        time.sleep(0.5)  # what the server still does after the last one
        out.append({"case": name, "server_cpu_ms": 1000 * (sum(server.ps.cpu_times()[:2]) - cpu0) / n,
                    "wall_ms": 1000 * (time.perf_counter() - t0 - 0.5) / n, "statuses": statuses,
                    "rss_mb": server.ps.memory_info().rss / 2**20})
    return out


def round_(server: Server, prompts, serial, requests, condition: str, rss: list):
    latency, same, errors = [], [0], []
    health = []
    stop = threading.Event()
    counts: dict = {}

    def client(prompt, body):
        for _ in range(requests):
            t0 = time.perf_counter()
            status, text = server.post(body)
            latency.append(time.perf_counter() - t0)
            if status != 200:
                errors.append((status, text[:200]))
            elif json.loads(text)["choices"][0]["message"]["content"] == serial[prompt]:
                same[0] += 1

    def probe():
        while not stop.is_set():
            t0 = time.perf_counter()
            server.get("/health")
            health.append(time.perf_counter() - t0)
            time.sleep(0.1)

    def memory():
        while not stop.is_set():
            rss.append(server.ps.memory_info().rss)
            time.sleep(0.05)

    side = [threading.Thread(target=probe), threading.Thread(target=memory)]
    if condition != "calm":
        side.append(threading.Thread(target=abuser if condition == "abused" else flooder, args=(server, stop, counts)))
    cpu0, own0 = sum(server.ps.cpu_times()[:2]), sum(psutil.Process().cpu_times()[:2])
    for t in side:
        t.start()
    time.sleep(0 if condition == "calm" else 0.5)  # the abuse is under way before the clients start
    clients = [threading.Thread(target=client, args=(p, b)) for p, b in prompts.items()]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    stop.set()
    for t in side:
        t.join(120)
    return {"latency": latency, "same": same[0], "n": len(latency), "errors": errors, "health": health,
            "abuse": counts, "server_cpu_s": sum(server.ps.cpu_times()[:2]) - cpu0,
            "clients_cpu_s": sum(psutil.Process().cpu_times()[:2]) - own0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="calm/flood/abused triples, interleaved")
    p.add_argument("--conditions", nargs="+", default=["calm", "flood", "abused"],
                   choices=["calm", "flood", "abused"])
    p.add_argument("--requests", type=int, default=2, help="requests per client per round")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="threads of the model (default 1: the box has 2 cores)")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the server")
    p.add_argument("--server-cwd", metavar="DIR", help="folder the server starts in (another checkout: `python -m "
                                                        "edge_sdk` imports the edge_sdk of the folder it starts in)")
    p.add_argument("--per-case", type=int, default=40, metavar="N",
                   help="then N requests of each abusive kind alone, for the server CPU each costs (0: skip)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    server = Server(args.python, args.bundle, "--max-queue", str(4 * args.clients), "--threads", str(args.threads),
                    cwd=args.server_cwd)
    rss: list[int] = [server.ps.memory_info().rss]
    start_rss = rss[0]
    questions = [f"Tell me one fact about the number {i}." for i in range(args.clients)]
    prompts = {q: {"model": server.model_id, "max_tokens": args.max_tokens,
                   "messages": [{"role": "user", "content": q}]} for q in questions}
    serial = {q: json.loads(server.post(b)[1])["choices"][0]["message"]["content"] for q, b in prompts.items()}
    results = {c: [] for c in args.conditions}
    peaks = {c: [] for c in args.conditions}
    for _ in range(args.rounds):
        for kind in args.conditions:
            mem: list[int] = []
            results[kind].append(round_(server, prompts, serial, args.requests, kind, mem))
            peaks[kind].append(max(mem))
            rss += mem
    cases = per_case(server, args.per_case) if args.per_case else []
    log = server.stop()

    rows = []
    for kind in args.conditions:
        for i, r in enumerate(results[kind]):
            rows.append({"round": i + 1, "condition": kind, "requests": r["n"], "same": r["same"],
                         "errors": len(r["errors"]), "p50_s": statistics.median(r["latency"]),
                         "p95_s": percentile(r["latency"], 0.95), "max_s": max(r["latency"]),
                         "health_p95_ms": 1000 * percentile(r["health"], 0.95),
                         "health_max_ms": 1000 * max(r["health"]), "peak_rss_mb": peaks[kind][i] / 2**20,
                         "server_cpu_s": r["server_cpu_s"], "clients_cpu_s": r["clients_cpu_s"],
                         "abuse": {f"{k[0]} -> {k[1]}": v for k, v in sorted(r["abuse"].items(), key=str)}})
    summary = {"start_rss_mb": start_rss / 2**20, "peak_rss_mb": max(rss) / 2**20,
               "tracebacks_in_log": log.count("Traceback"),
               "log_lines": len(log.splitlines())}
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary, "per_case": cases}, indent=1, default=str))
        return 0
    print(f"server: {args.python} -m edge_sdk serve {args.bundle} --threads {args.threads}; {args.clients} clients x "
          f"{args.requests} requests per round, max_tokens {args.max_tokens}\n")
    print("| round | condition | p50 latency | p95 latency | max | /health p95 | /health max | same text as serial |"
          " errors | server CPU | clients+abuser CPU | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["round"], args.conditions.index(r["condition"]))):
        print(f"| {row['round']} | {row['condition']} | {row['p50_s']:.2f} s | {row['p95_s']:.2f} s | {row['max_s']:.2f} s"
              f" | {row['health_p95_ms']:.0f} ms | {row['health_max_ms']:.0f} ms | {row['same']}/{row['requests']} |"
              f" {row['errors']} | {row['server_cpu_s']:.1f} s | {row['clients_cpu_s']:.1f} s |"
              f" {row['peak_rss_mb']:.0f} MB |")
    abuse: dict = {}
    for row in rows:
        for k, v in row["abuse"].items():
            abuse[k] = abuse.get(k, 0) + v
    print("\n| condition | p50 latency (median of rounds) | p95 latency (median of rounds) | server CPU per round |")
    print("|---|---|---|---|")
    for kind in args.conditions:
        mine = [r for r in rows if r["condition"] == kind]
        if not mine:
            continue
        print(f"| {kind} | {statistics.median(r['p50_s'] for r in mine):.2f} s | "
              f"{statistics.median(r['p95_s'] for r in mine):.2f} s | "
              f"{statistics.median(r['server_cpu_s'] for r in mine):.1f} s |")
    print(f"\nabuser/flood requests over all rounds (case -> status: count): {abuse}")
    if cases:
        print(f"\n| request ({args.per_case} each, alone) | server CPU per request | wall per request | answers |"
              " server RSS after |")
        print("|---|---|---|---|---|")
        for c in cases:
            print(f"| {c['case']} | {c['server_cpu_ms']:.1f} ms | {c['wall_ms']:.1f} ms | {c['statuses']} |"
                  f" {c['rss_mb']:.0f} MB |")
    print(f"\nserver RSS: {summary['start_rss_mb']:.0f} MB at start, peak {summary['peak_rss_mb']:.0f} MB; "
          f"tracebacks in its log: {summary['tracebacks_in_log']}, log lines: {summary['log_lines']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
