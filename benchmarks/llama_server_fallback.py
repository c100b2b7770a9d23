"""llama.cpp's own OpenAI-compatible server as the hybrid router's fallback, run once for real.

    bash benchmarks/setup_anchors.sh llamacpp          # llama-cpp-python[server], built from source (~10 min)
    python benchmarks/llama_server_fallback.py BUNDLE GGUF [--llama-python PY] [--out FILE]

Starts `python -m llama_cpp.server` on GGUF (the "cloud") and `edge-sdk serve BUNDLE --fallback` in front of
it (the device), both on loopback, then asks through the official `openai` client:
  1. a question the small model knows, 2. one it does not (each stays on the device when its confidence
     reaches the threshold, else llama-server answers),
  3. the same with an e-mail address in it (the privacy gate keeps it on the device),
  4. the caller asking for the cloud with "route": "cloud",
  5. a prompt longer than the device's context (llama-server's context is larger),
and prints each answer with its route and time, as a markdown table (also to --out).
The tests use a second `edge-sdk serve` as the fallback; this script is the check that a server we did not
write speaks the same protocol.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEFAULT_LLAMA_PY = Path(os.environ.get("BENCH_VENVS", "/work/bench-venvs")) / "llamacpp" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if proc.poll() is not None:
                proc.log.seek(0)
                raise SystemExit(f"{what} exited with {proc.returncode}: {proc.log.read()[-2000:]}")
            if time.time() > deadline:
                raise SystemExit(f"{what} did not start within {timeout:.0f} s")
            time.sleep(0.5)


def _start(cmd: list[str]) -> subprocess.Popen:
    """A server whose log goes to a temporary file: llama_cpp.server logs every request, and an unread
    pipe would fill up and stop it."""
    log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    return proc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", help="the device's edge bundle")
    p.add_argument("gguf", help="the model llama-server serves as the fallback")
    p.add_argument("--llama-python", default=str(DEFAULT_LLAMA_PY),
                   help=f"a Python with llama-cpp-python[server] (default {DEFAULT_LLAMA_PY})")
    p.add_argument("--threshold", type=float, default=None, help="the router's confidence threshold (default 0.65)")
    p.add_argument("--out", help="append the markdown table to this file too")
    args = p.parse_args(argv)
    if not Path(args.llama_python).exists():
        p.error(f"{args.llama_python} does not exist: run benchmarks/setup_anchors.sh llamacpp "
                "(it installs llama-cpp-python[server])")

    import openai

    cloud_port, device_port = free_port(), free_port()
    cloud = _start([args.llama_python, "-m", "llama_cpp.server", "--model", args.gguf, "--model_alias", "llama-server",
                    "--host", "127.0.0.1", "--port", str(cloud_port), "--n_ctx", "8192", "--n_threads", "1"])
    device = None
    try:
        wait_for(f"http://127.0.0.1:{cloud_port}/v1/models", cloud, "llama_cpp.server")
        with urllib.request.urlopen(f"http://127.0.0.1:{cloud_port}/v1/models", timeout=5) as r:
            cloud_models = [m["id"] for m in json.loads(r.read())["data"]]
        cmd = [sys.executable, "-m", "edge_sdk", "serve", args.bundle, "--port", str(device_port), "--threads", "1",
               "--fallback", f"http://127.0.0.1:{cloud_port}/v1", "--fallback-model", "llama-server",
               "--policy", "auto", "--fallback-timeout", "120"]
        if args.threshold is not None:
            cmd += ["--confidence-threshold", str(args.threshold)]
        device = _start(cmd)
        wait_for(f"http://127.0.0.1:{device_port}/health", device, "edge-sdk serve")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{device_port}/v1", api_key="unused", max_retries=0,
                               timeout=300)
        model = client.models.list().data[0].id
        long_text = "Summarise this log in one line. " + " ".join(f"event {i}: the sensor read {i % 7} volts."
                                                                  for i in range(150))  # ~1,800 tokens: over a 1024-token bundle, within llama-server's 8192
        cases = [
            ("known fact", "Name the capital of France.", {}),
            ("obscure fact", "What is the capital of Bhutan? Answer with the name of the city only.", {}),
            ("personal data", "What is the capital of Bhutan? Answer with the name of the city only. Mail it to "
                                  "jane.doe@example.com.", {}),
            ("caller asks", "Name one river in Africa.", {"route": "cloud"}),
            ("too long for the device", long_text, {}),
        ]
        rows = []
        for name, prompt, extra in cases:
            t0 = time.perf_counter()
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": prompt}], max_tokens=32, temperature=0,
                extra_body=extra or None)
            reply = raw.parse()
            rows.append((name, reply.model_extra["route"], reply.choices[0].message.content.strip(),
                         time.perf_counter() - t0, raw.headers.get("x-edge-route")))
    finally:
        for proc in (device, cloud):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    lines = [f"Fallback: llama_cpp.server (llama-cpp-python) on {Path(args.gguf).name}, models {cloud_models}; "
             f"device: {Path(args.bundle).name}, policy auto.", "",
             "| case | route | answer | seconds |", "|---|---|---|---|"]
    for name, route, text, seconds, _header in rows:
        shown = text.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {json.dumps(route)} | {shown[:80]} | {seconds:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(table + "\n")
    from edge_sdk.runtime.hybrid.router import DEFAULT_THRESHOLD

    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLD

    def expected(name: str, route: dict) -> str:
        if name in ("known fact", "obscure fact"):  # the device's own judgement decides
            return "device" if route.get("confidence", 0) >= threshold else "cloud"
        return {"personal data": "device"}.get(name, "cloud")

    wrong = [n for n, route, *_ in rows if route["target"] != expected(n, route)]
    if wrong:
        print(f"unexpected routes: {', '.join(wrong)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
