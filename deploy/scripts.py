"""The scripts a Linux device build carries: install.sh (offline, into a venv) and run.sh.

POSIX sh, not bash: embedded images often have only busybox. The checks that need logic (Python
version, CPU, glibc, file hashes) run in the device's own Python, standard library only, before
anything is installed.
"""
from __future__ import annotations

# Runs on the device with its own interpreter before anything is installed: is this the device the
# build is for, and did every file arrive intact? Exit 1 with every problem listed, not the first.
PREFLIGHT = r'''
import hashlib, json, os, platform, sys
here = sys.argv[1]
with open(os.path.join(here, "device_build.json"), encoding="utf-8") as f:
    build = json.load(f)
problems = []
want, have = build["python"]["version"], "%d.%d" % sys.version_info[:2]
if have != want:
    problems.append("this Python is %s, the wheels of this build are for Python %s: set PYTHON=/path/to/python%s, "
                    "or package again with --python %s" % (have, want, want, have))
machine = build["target"]["machine"]
if platform.machine() != machine:
    problems.append("this CPU is %s, the build is for %s (%s): package again with the right --target"
                    % (platform.machine(), machine, build["target"]["name"]))
need = build["target"].get("min_glibc")
libc, version = platform.libc_ver()
if need and libc == "glibc" and version:
    if tuple(int(x) for x in version.split(".")[:2]) < tuple(int(x) for x in need.split(".")):
        problems.append("this system has glibc %s, the wheels need %s or newer" % (version, need))
# pip reads wheels/: anything there this build did not ship (a newer dependency dropped in beside the
# others) is refused, not installed.
listed = set(build["files"])
wheels = os.path.join(here, "wheels")
for name in sorted(os.listdir(wheels) if os.path.isdir(wheels) else []):
    if "wheels/" + name not in listed:
        problems.append("wheels/%s is not listed in device_build.json (this build did not ship it): remove it, "
                        "or copy the build folder again" % ascii(name)[1:-1])
for name, info in sorted(build["files"].items()):
    path = os.path.join(here, name)
    if not os.path.isfile(path):
        problems.append("%s is missing: copy the whole build folder" % name)
        continue
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != info["sha256"]:
        problems.append("%s does not match its sha256 in device_build.json (corrupted copy?)" % name)
if problems:
    sys.stderr.write("install.sh: this build cannot be installed here:\n  - " + "\n  - ".join(problems) + "\n")
    sys.exit(1)
print("install.sh: %d files verified; Python %s on %s" % (len(build["files"]), have, machine))
'''

# Runs with the new venv's interpreter: pip installs exactly the wheels device_build.json lists, named one
# by one (no --find-links folder to choose from, no index, no pip configuration or PIP_* variables).
INSTALL_PY = r'''
import json, os, subprocess, sys
here = sys.argv[1]
with open(os.path.join(here, "device_build.json"), encoding="utf-8") as f:
    build = json.load(f)
folder = os.path.join(here, "wheels")
# Named relative to the wheels folder: pip would read a ";" in the path of the folder as an environment marker.
wheels = sorted("./" + n[len("wheels/"):] for n in build["files"] if n.startswith("wheels/") and n.endswith(".whl"))
pip = [w for w in wheels if w.startswith("./pip-")]
if len(pip) != 1 or any("/" in w[2:] for w in wheels):
    sys.exit("install.sh: device_build.json must list exactly one pip wheel, in wheels/; copy the build folder again")
sys.exit(subprocess.call([sys.executable, "-I", os.path.join(folder, pip[0], "pip"), "install", "--isolated",
                          "--no-index", "--disable-pip-version-check", "--quiet", "--no-warn-script-location", *wheels],
                         cwd=folder))
'''

INSTALL_SH = r'''#!/bin/sh
# Install this edge-sdk device build offline: a virtual environment with edge-sdk and its
# dependencies from ./wheels (built for {target}, CPython {python}). No network is used.
#
#   ./install.sh                                # uses python{python} if present, else python3
#   PYTHON=/usr/bin/python{python} ./install.sh
#   EDGE_SDK_VENV=/opt/edge-sdk ./install.sh    # install somewhere else (default: ./.venv)
#
# Every path is quoted and printed with printf: the folder's name is data, whatever it contains.
set -eu
here=$(cd -- "$(dirname -- "$0")" && pwd)
venv=${{EDGE_SDK_VENV:-$here/.venv}}
if [ -z "${{PYTHON:-}}" ]; then
    if command -v python{python} >/dev/null 2>&1; then PYTHON=python{python}; else PYTHON=python3; fi
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    printf 'install.sh: %s not found; install Python {python} (e.g. sudo apt install python3) or set PYTHON=/path/to/python{python}\n' "$PYTHON" >&2
    exit 1
fi

# 1. The right device, every file intact (sha256 from device_build.json), nothing unlisted in wheels/.
# (-I: isolated, nothing imported from the working folder or PYTHON* variables.)
"$PYTHON" -I -c '{preflight}' "$here"

# 2. A venv without ensurepip (Debian splits it into python3-venv); pip runs from its own wheel and
#    installs the listed wheels, and only those.
if ! "$PYTHON" -m venv --without-pip "$venv"; then
    printf 'install.sh: could not create a virtual environment in %s with %s (Debian/Ubuntu: sudo apt install python3-venv)\n' "$venv" "$PYTHON" >&2
    exit 1
fi
"$venv/bin/python" -I -c '{install}' "$here"

# 3. The runtime imports and finds its execution providers on this device (-P: not from the working folder).
"$venv/bin/python" -P -c 'import platform, edge_sdk, onnxruntime as ort; print("install.sh: edge-sdk %s, onnxruntime %s (%s) on %s" % (edge_sdk.__version__, ort.__version__, ", ".join(ort.get_available_providers()), platform.machine()))'
printf 'install.sh: done. Start it with %s/run.sh\n' "$here"
'''

_RUN_HEADER = r'''#!/bin/sh
# Run this device build: {what},
# with the {profile} device profile (threads, providers) from device_profile.json.
{usage}
set -eu
here=$(cd -- "$(dirname -- "$0")" && pwd)
venv=${{EDGE_SDK_VENV:-$here/.venv}}
if [ ! -x "$venv/bin/python" ]; then
    printf 'run.sh: not installed yet; run %s/install.sh first\n' "$here" >&2
    exit 1
fi
# The venv's interpreter runs the module, not pip's launcher script (.venv/bin/edge-sdk): that script
# names the interpreter by its path, which the shell would parse if the folder's name has spaces.
'''

RUN_SH = {
    "none": _RUN_HEADER + r'''if [ $# -eq 0 ]; then
    exec "$venv/bin/python" -P -m edge_sdk chat "$here/bundle" --device "$here/device_profile.json"
fi
prompt=$1
shift
exec "$venv/bin/python" -P -m edge_sdk run "$here/bundle" --device "$here/device_profile.json" --prompt "$prompt" "$@"
''',
    "chat": _RUN_HEADER + r'''exec "$venv/bin/python" -P -m edge_sdk.mobile_demo --bundle "$here/bundle" --device "$here/device_profile.json" {embedder}"$@"
''',
    "server": _RUN_HEADER + r'''exec "$venv/bin/python" -P -m edge_sdk serve "$here/bundle" --device "$here/device_profile.json" "$@"
''',
}


def install_sh(*, target: str, python: str) -> str:
    # The Python steps go inside single quotes: they must not contain any.
    assert "'" not in PREFLIGHT + INSTALL_PY
    return INSTALL_SH.format(target=target, python=python, preflight=PREFLIGHT.strip(), install=INSTALL_PY.strip())


_USAGE = {
    "none": "#   ./run.sh                      chat in the terminal (Ctrl-C stops a reply, Ctrl-D quits)\n"
            "#   ./run.sh \"PROMPT\" [OPTIONS]   one reply; OPTIONS are edge-sdk run's (e.g. --max-new-tokens 64)",
    "chat": "#   ./run.sh    the chat app (Kivy) in a window: needs a desktop session, or SDL_VIDEODRIVER=kmsdrm on a console",
    "server": "#   ./run.sh [OPTIONS]    serve the OpenAI API on 127.0.0.1:8000; OPTIONS are edge-sdk serve's\n"
              "#                         (e.g. --host 0.0.0.0 --api-key-env EDGE_SDK_API_KEY to reach it from the network)",
}


def run_sh(app: str, *, what: str, profile: str, embedder: bool = False) -> str:
    """run.sh for `app`; with `embedder`, the chat app is started with the build's embedder for its documents panel."""
    return RUN_SH[app].format(what=what, profile=profile, usage=_USAGE[app],
                              embedder='--embedder "$here/embedder" ' if embedder else "")
