"""The distillation loop end to end, measured: served escalations -> teacher log -> adapter -> switched in.

    .venv/bin/python examples/distill/run.py --out /tmp/distill-example      # ~10-15 min on a 2-core box

1. `oracle_server.py` (the teacher: a keyword rule, see task.py) listens as an OpenAI-compatible endpoint.
2. `edge-sdk serve BUNDLE --fallback ORACLE --learn OUT/teacher` (policy auto) is sent the training prompts over
   HTTP: the device answers each, and the router escalates those it is not confident of; each escalation is
   logged.
3. `edge-sdk distill BUNDLE --data OUT/teacher --output OUT/adapter` trains a LoRA on that log.
4. `edge-sdk export SOURCE --adapters learned=OUT/adapter --output OUT/bundle` switches it in (a run-time
   adapter: the same bundle answers with and without it).
5. `edge-sdk serve OUT/bundle --fallback ORACLE` is sent the held-out prompts (messages from templates the
   training prompts never used), each four times, interleaved: base model and adapter, under the router
   (auto) and with "route": "device" (the device's own answer, even when the router would have escalated).

Prints the before/after table (markdown) and writes OUT/results.json. Nothing here is timed as a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from task import oracle, prompt_of, score, split  # noqa: E402

EDGE_SDK = [sys.executable, "-m", "edge_sdk"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post(url: str, body: dict, timeout: float = 120.0) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Process:
    """A child process (its output to a log file) stopped on exit, whatever happens."""

    def __init__(self, args: list[str], log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def wait_http(self, url: str, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.proc.args[:4]} exited with {self.proc.returncode}: see {self.log.name}")
            try:
                return get(url)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise SystemExit(f"no answer from {url} in {timeout:.0f} s: see {self.log.name}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def step(title: str) -> float:
    print(f"[{time.strftime('%H:%M:%S')}] {title}", file=sys.stderr, flush=True)
    return time.monotonic()


def run(args: list[str], log: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[2:5])} ... failed ({done.returncode}): see {log}")


def serve(bundle: Path, oracle_url: str, out: Path, name: str, extra: list[str], threshold: float | None):
    port = free_port()
    args = [*EDGE_SDK, "serve", str(bundle), "--port", str(port), "--fallback", oracle_url,
            "--fallback-model", "keyword-oracle", "--policy", "auto", "--threads", "2", *extra]
    if threshold is not None:
        args += ["--confidence-threshold", str(threshold)]
    process = Process(args, out / f"{name}.log")
    return process, f"http://127.0.0.1:{port}/v1"


def ask(base: str, model: str, prompt: str, max_tokens: int, route: str | None = None) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": max_tokens}
    if route:
        body["route"] = route
    started = time.monotonic()
    reply = post(f"{base}/chat/completions", body)
    return {"answer": reply["choices"][0]["message"]["content"], "route": reply.get("route") or {},
            "seconds": round(time.monotonic() - started, 3)}


def summarise(rows: list[dict], key: str) -> dict:
    """Per side: the device's own answers (route device) and the served ones (auto) against the oracle."""
    device = [r[key]["device"] for r in rows]
    served = [r[key]["auto"] for r in rows]
    expected = [r["oracle"] for r in rows]
    escalated = [s["route"].get("target") == "cloud" for s in served]
    confidences = [s["route"]["confidence"] for s in served if s["route"].get("confidence") is not None]
    return {
        "device_accuracy": _share(score(d["answer"]) == e for d, e in zip(device, expected)),
        "device_format_ok": _share(score(d["answer"]) is not None for d in device),
        "escalation_rate": _share(escalated),
        "mean_confidence": round(statistics.fmean(confidences), 4) if confidences else None,
        "served_accuracy": _share(score(s["answer"]) == e for s, e in zip(served, expected)),
        "median_seconds_auto": round(statistics.median(s["seconds"] for s in served), 3),
    }


def _share(flags) -> float:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4)


def table(results: dict) -> str:
    before, after = results["before"], results["after"]
    fit = results["distill"]
    pct = lambda x: "-" if x is None else f"{100 * x:.0f} %"  # noqa: E731
    n = results["config"]["test"]
    lines = [
        f"| held-out prompts (n={n}), threshold {results['threshold']} | before (base) | after (adapter) |",
        "|---|---|---|",
        f"| device answer right (= agrees with the teacher), route device | {pct(before['device_accuracy'])} | "
        f"{pct(after['device_accuracy'])} |",
        f"| device answer in the fixed format (a team's name alone) | {pct(before['device_format_ok'])} | "
        f"{pct(after['device_format_ok'])} |",
        f"| escalated by the router (auto) | {pct(before['escalation_rate'])} | {pct(after['escalation_rate'])} |",
        f"| mean confidence (the router's measure) | {before['mean_confidence']} | {after['mean_confidence']} |",
        f"| served answer right (auto: device or teacher) | {pct(before['served_accuracy'])} | "
        f"{pct(after['served_accuracy'])} |",
        f"| median seconds per request (auto, teacher on loopback) | {before['median_seconds_auto']} | "
        f"{after['median_seconds_auto']} |",
        "",
        f"collection: {results['collection']['escalated']} of {results['collection']['sent']} training prompts "
        f"escalated and logged; distill held out {fit['held_out']} of them: exact match "
        f"{pct(fit['before']['exact_match'])} -> {pct(fit['after']['exact_match'])}, escalation "
        f"{pct(fit['before']['escalation_rate'])} -> {pct(fit['after']['escalation_rate'])} (fp32 student); "
        f"epochs run {fit['epochs']}; minutes: " + ", ".join(f"{k} {v}" for k, v in results["minutes"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (replaced)")
    parser.add_argument("--bundle", type=Path, default=Path("/work/bundles/smollm2-default"),
                        help="the device bundle that collects the log and is the student")
    parser.add_argument("--train", type=int, default=32, help="training prompts sent through the server")
    parser.add_argument("--test", type=int, default=24, help="held-out prompts measured before and after")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-4, help="distill's learning rate")
    parser.add_argument("--resume", action="store_true",
                        help="keep OUT and skip the steps whose output is there (the log + adapter, the bundle)")
    parser.add_argument("--seed", type=int, default=0, help="the prompt split's and distill's seed")
    parser.add_argument("--max-tokens", type=int, default=12, help="answer length on the device and in distill")
    parser.add_argument("--slots-bundle", type=Path, default=None,
                        help="a bundle of the same source and recipe with adapter slots (an earlier run's OUT/bundle):"
                             " copied and given the adapter by `edge-sdk adapter add` instead of a new export")
    parser.add_argument("--threshold", type=float, default=None, help="the router's (default: its own, 0.65)")
    args = parser.parse_args(argv)

    from edge_sdk.runtime.hybrid.router import DEFAULT_THRESHOLD
    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLD
    out = args.out.resolve()
    if out.exists() and not args.resume:
        subprocess.run(["rm", "-rf", "--", str(out)], check=True)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((args.bundle / "edge_manifest.json").read_text())
    source, recipe = manifest["provenance"]["source"], manifest["quantization"]["recipe"]
    if args.slots_bundle:
        slots = json.loads((args.slots_bundle / "edge_manifest.json").read_text())
        if not slots.get("lora") or slots["provenance"]["source"] != source or \
                slots["quantization"]["recipe"] != recipe:
            raise SystemExit(f"--slots-bundle {args.slots_bundle}: not a {source} {recipe} bundle with adapter slots")
    train, test = split(args.train, args.test, seed=args.seed)
    minutes: dict[str, float] = {}

    oracle_port = free_port()
    t = step(f"teacher: {HERE / 'oracle_server.py'} on port {oracle_port}")
    with Process([sys.executable, str(HERE / "oracle_server.py"), "--port", str(oracle_port)],
                 out / "oracle.log") as teacher:
        oracle_url = f"http://127.0.0.1:{oracle_port}/v1"
        teacher.wait_http(f"{oracle_url}/models")

        # 2. Collect: the training prompts through the real server, escalations logged.
        have = args.resume and (out / "adapter" / "report.json").exists() and (out / "collected.json").exists()
        t = step(f"collect: {len(train)} training prompts through edge-sdk serve --learn")
        if have:
            collected = json.loads((out / "collected.json").read_text())
        else:
            server, base = serve(args.bundle, oracle_url, out, "serve-collect",
                                 ["--learn", str(out / "teacher")], args.threshold)
            with server:
                model = server.wait_http(f"{base}/models")["data"][0]["id"]
                collected = [ask(base, model, prompt_of(m), args.max_tokens) for m, _ in train]
            (out / "collected.json").write_text(json.dumps(collected))
        escalated = sum(c["route"].get("target") == "cloud" for c in collected)
        minutes["collect"] = round((time.monotonic() - t) / 60, 1)

        # 3. Distill the log into an adapter.
        t = step(f"distill: {escalated} logged escalations -> {out / 'adapter'}")
        if not have:
            run([*EDGE_SDK, "distill", str(args.bundle), "--data", str(out / "teacher"), "--output",
                 str(out / "adapter"), "--epochs", str(args.epochs), "--lr", str(args.lr), "--seed", str(args.seed),
                 "--max-new-tokens", str(args.max_tokens), "--threshold", str(threshold), "--force"],
                out / "distill.log")
        report = json.loads((out / "adapter" / "report.json").read_text())
        minutes["distill"] = round((time.monotonic() - t) / 60, 1)

        # 4. Switch it in: a bundle of the same source and recipe with the adapter as a run-time slot, exported
        # here or (--slots-bundle, e.g. an earlier run's OUT/bundle) copied and given it by `adapter add`.
        t = time.monotonic()
        if not (args.resume and (out / "bundle" / "edge_manifest.json").exists()):
            shutil.rmtree(out / "bundle", ignore_errors=True)
            if args.slots_bundle:
                t = step(f"adapter add: a copy of {args.slots_bundle} learned=adapter (validated on {source})")
                shutil.copytree(args.slots_bundle, out / "bundle")
                run([*EDGE_SDK, "adapter", "add", str(out / "bundle"), f"learned={out / 'adapter'}", "--source",
                     source, "--force"], out / "adapter-add.log")
            else:
                t = step(f"export: {source} --recipe {recipe} --adapters learned=adapter")
                run([*EDGE_SDK, "export", source, "--recipe", recipe, "--adapters", f"learned={out / 'adapter'}",
                     "--output", str(out / "bundle"), "--quiet", "--force"], out / "export.log")
        minutes["switch-in"] = round((time.monotonic() - t) / 60, 1)

        # 5. Measure the held-out prompts on that bundle, base and adapter interleaved, in one server.
        t = step(f"measure: {len(test)} held-out prompts x 4 (base/adapter x auto/device)")
        server, base = serve(out / "bundle", oracle_url, out, "serve-measure", [], args.threshold)
        rows = []
        with server:
            model = server.wait_http(f"{base}/models")["data"][0]["id"]
            sides = {"before": model, "after": f"{model}:learned"}
            for message, label in test:
                row = {"message": message, "label": label, "oracle": oracle(message)}
                for side, name in sides.items():
                    auto = ask(base, name, prompt_of(message), args.max_tokens)
                    # The device's own answer: the auto one when the router kept it, else asked for again.
                    device = (auto if auto["route"].get("target") == "device"
                              else ask(base, name, prompt_of(message), args.max_tokens, route="device"))
                    row[side] = {"auto": auto, "device": device}
                rows.append(row)
        minutes["measure"] = round((time.monotonic() - t) / 60, 1)

    results = {
        "config": {"bundle": str(args.bundle), "source": source, "recipe": recipe, "train": len(train),
                   "test": len(test), "epochs": args.epochs, "seed": args.seed, "max_tokens": args.max_tokens,
                   "lr": args.lr},
        "threshold": threshold,
        "collection": {"sent": len(train), "escalated": escalated,
                       "mean_confidence": round(statistics.fmean(
                           c["route"]["confidence"] for c in collected if c["route"].get("confidence") is not None), 4)},
        "distill": {"held_out": report["held_out"], "train": report["train"],
                    "before": report["before"], "after": report["after"],
                    "epochs": len(report["training"]["held_out_loss"]) - 1},
        "before": summarise(rows, "before"),
        "after": summarise(rows, "after"),
        "minutes": minutes,
        "rows": rows,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
