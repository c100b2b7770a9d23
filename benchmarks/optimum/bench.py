"""Interleaved rounds of run_one.py, each in a fresh process under /usr/bin/time -v. Writes results/runs.jsonl
and results/summary.json. Usage: python bench.py ROUNDS"""
import json, re, statistics, subprocess, sys
from pathlib import Path

import os
HERE = Path(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"))  # inputs, graphs and results
SCRIPTS = Path(__file__).resolve().parent
RUNNERS = {
    "ours": "/work/main/.venv/bin/python",
    "optimum": "/work/bench-venvs/optimum/bin/python",
    "optimum-iob": "/work/bench-venvs/optimum/bin/python",
    "optimum-O2": "/work/bench-venvs/optimum/bin/python",
    "optimum-accel": "/work/bench-venvs/optimum/bin/python",
}
if os.environ.get("RUNTIMES"):
    RUNNERS = {k: RUNNERS[k] for k in os.environ["RUNTIMES"].split(",")}
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TAG = sys.argv[2] if len(sys.argv) > 2 else ""
names = list(RUNNERS)
out = (HERE / "results" / f"runs{TAG}.jsonl").open("w")
up = {"before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
rows = []
for r in range(rounds):
    order = names[r % len(names):] + names[:r % len(names)]  # rotate the order each round
    for name in order:
        cmd = ["/usr/bin/time", "-v", RUNNERS[name], str(SCRIPTS / "run_one.py"), name]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{name} failed:\n{p.stderr[-3000:]}")
        row = json.loads(p.stdout.strip().splitlines()[-1])
        row["time_v_maxrss_mb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) * 1024 / 1e6
        row["round"] = r
        row["loadavg"] = open("/proc/loadavg").read().split()[:3]
        rows.append(row)
        out.write(json.dumps(row) + "\n"); out.flush()
        print(f"round {r} {name:12s} prefill {row['prefill_tok_s']:7.1f} tok/s  decode {row['decode_tok_s']:6.2f} tok/s  "
              f"rss {row['peak_rss_mb']:6.0f} MB  load {row['load_s']:.2f}s  loadavg {row['loadavg']}", flush=True)
up["after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
summary = {"uptime": up, "rounds": rounds}
for name in names:
    rs = [x for x in rows if x["runtime"] == name]
    summary[name] = {k: {"median": statistics.median(x[k] for x in rs), "min": min(x[k] for x in rs), "max": max(x[k] for x in rs)}
                     for k in ("prefill_tok_s", "decode_tok_s", "ttft_s", "decode_s", "load_s", "peak_rss_mb", "time_v_maxrss_mb")}
    summary[name]["tokens_identical_across_runs"] = all(x["tokens"] == rs[0]["tokens"] for x in rs)
    summary[name]["tokens"] = rs[0]["tokens"]
json.dump(summary, (HERE / "results" / f"summary{TAG}.json").open("w"), indent=1)
print(json.dumps({k: v for k, v in summary.items() if k not in names}, indent=1))
for name in names:
    s = summary[name]
    print(name, {k: round(v["median"], 2) for k, v in s.items() if isinstance(v, dict)})
