#!/usr/bin/env python3
"""Run a linux-aarch64 device build on this x86-64 Linux machine, under qemu: what a Raspberry Pi would do.

    edge-sdk package bundles/smollm2-135m-instruct --target linux-aarch64 --output dist/pi
    python3 scripts/emulate_arm64.py dist/pi.tar.gz "What is the capital of France?"

The "device" is Debian bookworm's own arm64 Python 3.11 (what Raspberry Pi OS ships), unpacked from its
.deb packages into a sysroot and run by qemu user-mode emulation; the build's install.sh and run.sh run
unchanged. The sysroot and qemu are set up by tests/arm64/sysroot.py, the code the test suite uses
(tests/arm64), cached in ~/.cache/edge-sdk/arm64. The first run needs root on a Debian/Ubuntu host (apt-get
install qemu-user-static, binfmt_misc) and reaches deb.debian.org; later runs need neither.

Arguments after the build are passed to run.sh: a prompt for one reply (`./run.sh "PROMPT"`), none for a
terminal chat (or the server of a --app server build). Emulation is slow (~1 token/s for SmolLM2-135M);
it proves the build, it does not measure a board.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.arm64 import sysroot as sr  # noqa: E402  (stdlib only: the test suite's emulated device)

CACHE = Path(os.environ.get("EDGE_SDK_CACHE", Path.home() / ".cache" / "edge-sdk")) / "arm64"
T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[arm64 {time.perf_counter() - T0:5.0f}s] {message}", file=sys.stderr, flush=True)


def unpack(build: Path, workdir: Path) -> Path:
    """The build folder to run: `build` itself, or the .tar.gz unpacked into `workdir` (as on the device)."""
    if build.is_dir():
        return build
    if not tarfile.is_tarfile(build):
        raise SystemExit(f"error: {build} is neither a device build folder nor its .tar.gz "
                         "(make one with `edge-sdk package BUNDLE --target linux-aarch64 --output DIR`)")
    workdir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(build) as tar:
        top = {Path(n).parts[0] for n in tar.getnames() if n and not n.startswith("/")}
        tar.extractall(workdir, filter="data")
    if len(top) != 1:
        raise SystemExit(f"error: {build} should hold one folder (a device build), it holds {sorted(top)[:5]}")
    return workdir / top.pop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/emulate_arm64.py", description=__doc__.split("\n\n")[0],
                                 epilog="Everything after BUILD goes to run.sh.")
    ap.add_argument("build", type=Path, metavar="BUILD", help="a linux-aarch64 device build: DIR.tar.gz or DIR")
    ap.add_argument("--workdir", type=Path, help="where the .tar.gz is unpacked (default: BUILD's folder/arm64)")
    ap.add_argument("--gui", action="store_true", help="add Mesa to the sysroot: a --app chat build draws offscreen")
    args, run_args = ap.parse_known_args(argv)
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise SystemExit(f"error: this sets up arm64 emulation on x86-64 Linux (this is {sys.platform} "
                         f"{platform.machine()}); on an arm64 board run the build's install.sh and run.sh directly")
    if not args.build.exists():
        raise SystemExit(f"error: {args.build} does not exist")
    try:
        qemu = sr.ensure_qemu()
    except RuntimeError as e:
        raise SystemExit(f"error: {e}") from None
    say(f"qemu: {qemu}")
    binfmt = sr.ensure_binfmt(qemu)
    say("arm64 programs run directly (binfmt_misc)" if binfmt else
        "binfmt_misc not available (not root?): the arm64 python runs through a wrapper script")
    say(f"sysroot: Debian bookworm's arm64 python3.11 in {CACHE} (built once: 14 packages, ~1 minute)")
    root = sr.ensure_sysroot(CACHE, gui=args.gui, log=lambda m: say(f"  {m}"))
    python = str(root / sr.PYTHON_IN_SYSROOT) if binfmt else str(sr.python_wrapper(root))
    env = sr.arm64_env(root, gui=args.gui)
    for key in [k for k in env if k.startswith("PIP_")]:  # the device installs offline, from its own wheels
        env.pop(key)
    env.update(PYTHON=python, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1")

    build = unpack(args.build.resolve(), (args.workdir or args.build.resolve().parent / "arm64").resolve())
    if not (build / "install.sh").is_file():
        raise SystemExit(f"error: {build} has no install.sh: not a device build")
    if not (build / ".venv").exists():
        say(f"install.sh in {build} (emulated: about a minute)")
        proc = subprocess.run(["sh", "install.sh"], cwd=build, env=env)
        if proc.returncode != 0:
            say(f"install.sh failed (exit {proc.returncode})")
            return proc.returncode
    say(f"run.sh {' '.join(run_args)}".rstrip())
    return subprocess.run(["sh", "run.sh", *run_args], cwd=build, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
