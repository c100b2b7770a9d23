"""Peak host memory and time of an export, stage by stage (Linux).

    .venv/bin/python benchmarks/export_memory.py SOURCE --output BUNDLE [--json OUT.json] [-- EXPORT ARGS...]

Runs `edge-sdk export SOURCE -o BUNDLE --force ...` in a child process and samples its /proc/PID/status every
0.1 s: VmRSS (resident), RssAnon (memory only this process holds) and RssFile (pages of mapped files: the
GGUF, the bundle being written; the kernel can drop them). The peak is the kernel's own (the child's ru_maxrss). Each stage line
the exporter prints (`[  12.3s] message`) starts a row, so the table says which step holds the peak.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


STAGE = re.compile(r"^\[\s*[0-9.]+s\] (.*)$")  # exporters/progress.py's stage lines


def status(pid: int) -> dict[str, int] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            out = {}
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
            return out
    except (OSError, ValueError):
        return None


def measure(cmd: list[str], interval: float = 0.1, echo: bool = True) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    stages: list[dict] = [{"stage": "start (imports)", "t": 0.0, "rss": 0, "anon": 0, "file": 0}]
    lines: list[str] = []
    hwm = [0]
    lock = threading.Lock()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo:
                sys.stderr.write(line)
            stage = STAGE.match(line)
            if stage:
                with lock:
                    stages.append({"stage": stage.group(1).strip()[:90], "t": time.perf_counter() - t0,
                                   "rss": 0, "anon": 0, "file": 0})

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while proc.poll() is None:
        s = status(proc.pid)
        if s:
            hwm[0] = max(hwm[0], s.get("VmHWM", 0))
            with lock:
                row = stages[-1]
                if s["VmRSS"] > row["rss"]:
                    row.update(rss=s["VmRSS"], anon=s["RssAnon"], file=s["RssFile"])
        time.sleep(interval)
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    # The kernel's peak of the waited-for child (ru_maxrss, kB on Linux): exact, where sampling can miss it.
    kernel_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"returncode": proc.returncode, "wall_s": wall,
            "peak_rss": max(kernel_peak, hwm[0], *(r["rss"] for r in stages)),
            "stages": stages, "tail": "".join(lines[-20:])}


def main() -> int:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.add_argument("--json", type=Path)
    p.add_argument("--quiet", action="store_true", help="do not echo the exporter's output")
    args = p.parse_args(argv)
    if not Path("/proc/self/status").exists():
        p.error("this reads /proc: Linux only")
    cmd = [sys.executable, "-m", "edge_sdk", "export", args.source, "-o", str(args.output), "--force", *extra]
    res = measure(cmd, echo=not args.quiet)
    res["command"] = ["edge-sdk", *cmd[3:]]
    mb = 1e6
    print(f"{' '.join(res['command'])}: exit {res['returncode']}, {res['wall_s']:.0f} s, "
          f"peak RSS (VmHWM) {res['peak_rss'] / mb:.0f} MB")
    print("| stage (from) | at s | peak RSS MB | RssAnon MB | RssFile MB |\n|---|---|---|---|---|")
    for r in res["stages"]:
        print(f"| {r['stage']} | {r['t']:.0f} | {r['rss'] / mb:.0f} | {r['anon'] / mb:.0f} | {r['file'] / mb:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0 if res["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
