"""Usefulness of schema-constrained answers over HTTP: an extraction set answered with a JSON Schema through
`edge-sdk serve` (and, when given, llama.cpp's server with its json_schema support), side by side.

    python benchmarks/structured_usefulness.py --bundle BUNDLE [--bundle BUNDLE2 ...] \
        [--gguf GGUF --llama-python PY] [--rounds 2]

`benchmarks/structured_schemas/extraction.jsonl`: 24 sentences, each with its person's name, age and city.
Each sentence is sent through the official `openai` client as "Extract the person: <sentence>" with the schema
{name: string, age: integer, city: string} (strict, all required), greedy, max_tokens 60. Reported per server:
answers cut off by max_tokens (an unbounded string can run on), answers that are schema-valid JSON (checked
with jsonschema; a cut answer is not), field accuracy (name and city compared after
trimming and case-folding, age exactly) and the wall time per answer (median and [min-max] over every answer
of every round). Each sentence goes to every server in turn before the next one, so load on a shared box
affects all of them alike. Several --bundle (e.g. two recipes) are one `edge-sdk serve` each, labelled by recipe.

llama.cpp's side runs `python -m llama_cpp.server --model GGUF` (llama-cpp-python[server]: see
benchmarks/setup_anchors.sh) and sends the same request with response_format
{"type": "json_object", "schema": ...}, the form llama-cpp-python's server turns into a grammar (it reads only
"json_object" with a "schema" key, not OpenAI's "json_schema" shape), and with repeat_penalty 1.0: its server
defaults to 1.1 even at temperature 0, while edge-sdk's structured requests default to no penalty; both are
then plain greedy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "structured_schemas" / "extraction.jsonl"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                           "city": {"type": "string"}},
          "required": ["name", "age", "city"], "additionalProperties": False}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], health: str, timeout: float = 600) -> subprocess.Popen:
    import urllib.request

    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(health, timeout=5):
                return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                proc.kill()
                raise SystemExit(f"{cmd[:4]} did not start: {log.read()[-2000:]}")
            time.sleep(0.5)


def ask(client, model: str, text: str, response_format: dict, extra: dict):
    t0 = time.perf_counter()
    resp = client.chat.completions.create(
        model=model, temperature=0, max_tokens=60, response_format=response_format, extra_body=extra or None,
        messages=[{"role": "user", "content": f"Extract the person: {text}"}])
    return resp.choices[0].message.content or "", resp.choices[0].finish_reason, time.perf_counter() - t0


def score(answer: str, expected: dict) -> tuple[bool, int]:
    """(schema-valid, fields right)."""
    import jsonschema

    try:
        got = json.loads(answer)
        jsonschema.validate(got, SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False, 0
    right = sum(str(got[k]).strip().casefold() == str(expected[k]).casefold() for k in ("name", "city"))
    return True, right + (got["age"] == expected["age"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True, action="append", help="an edge-sdk bundle; again for more")
    p.add_argument("--gguf", help="the same model as a GGUF, for llama.cpp's server")
    p.add_argument("--llama-python", help="a Python with llama-cpp-python[server]")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import openai

    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    servers = {}
    procs = []
    try:
        for bundle in args.bundle:
            port = free_port()
            procs.append(start([sys.executable, "-m", "edge_sdk", "serve", bundle, "--port", str(port),
                                "--threads", str(args.threads)], f"http://127.0.0.1:{port}/health"))
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=600)
            model = client.models.list().data[0].id
            manifest = json.loads((Path(bundle) / "edge_manifest.json").read_text())
            recipe = manifest.get("quantization", {}).get("recipe", "?")
            servers[f"edge-sdk serve ({recipe})"] = (client, model, {"type": "json_schema", "json_schema": {
                "name": "person", "schema": SCHEMA, "strict": True}}, {})
        if args.gguf and args.llama_python:
            lport = free_port()
            procs.append(start([args.llama_python, "-m", "llama_cpp.server", "--model", args.gguf, "--port",
                                str(lport), "--n_threads", str(args.threads), "--n_ctx", "1024"],
                               f"http://127.0.0.1:{lport}/v1/models"))
            lclient = openai.OpenAI(base_url=f"http://127.0.0.1:{lport}/v1", api_key="x", max_retries=0, timeout=600)
            lmodel = lclient.models.list().data[0].id
            servers[f"llama.cpp server ({Path(args.gguf).name})"] = (
                lclient, lmodel, {"type": "json_object", "schema": SCHEMA}, {"repeat_penalty": 1.0})
        results = {name: {"valid": 0, "fields": 0, "answers": 0, "cut": 0, "times": [],
                          "examples": []} for name in servers}
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for row in rows:
                for name, (c, m, rf, extra) in servers.items():  # interleaved: the same load for all
                    answer, finish, took = ask(c, m, row["text"], rf, extra)
                    valid, right = score(answer, row["expected"])
                    r = results[name]
                    r["answers"] += 1
                    r["cut"] += finish == "length"
                    r["valid"] += valid
                    r["fields"] += right
                    r["times"].append(took)
                    if len(r["examples"]) < 3:
                        r["examples"].append(answer)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    print(f"{len(rows)} sentences x {args.rounds} rounds, greedy, max_tokens 60, {args.threads} threads per server; "
          f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print("| server | answers | cut by max_tokens | schema-valid | field accuracy | time per answer, median [min-max] |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        t = r["times"]
        print(f"| {name} | {r['answers']} | {r['cut']} | {r['valid']}/{r['answers']} | "
              f"{r['fields']}/{3 * r['answers']} ({100 * r['fields'] / (3 * r['answers']):.0f} %) | "
              f"{statistics.median(t):.2f} s [{min(t):.2f}-{max(t):.2f}] |")
    for name, r in results.items():
        print(f"\n{name}, first answers: {r['examples']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
