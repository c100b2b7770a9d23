"""The shell commands in README.md and docs/*.md work: the ones marked runnable are run, and every path any
command names exists.

The marker is the fenced block's info string: a block opened with three backticks and ``bash runnable``
(GitHub still shows it as bash). Its lines run in order in one ``bash -euo pipefail`` per block, in a fresh
working folder that links the checkout's folders (scripts/, examples/, docs/ ...), so what the commands
write (bundles/, dist/, an index) lands in a temporary folder; ``edge-sdk`` is this checkout's.

Mark a block runnable when it finishes on its own in seconds to a minute or two on the real SmolLM2. Not
marked: blocks that serve or open a window (serve, the chat app), need another machine (a Pi, a phone,
Android tools), or train for minutes (examples/lora). Inside a marked block:

- ``pip install ...`` lines are skipped and reported: the test environment is the install; so is
  ``edge-sdk package`` when the package index cannot be reached (it downloads the target's wheels);
- the default exports (``edge-sdk export smollm2-135m-instruct --output DIR``, ``edge-sdk export
  all-minilm-l6-v2 --output DIR``, nothing else on the line) reuse the session's bundles (the
  ``smollm2_bundle`` and ``minilm_bundle`` fixtures: EDGE_SDK_TEST_BUNDLE / EDGE_SDK_TEST_EMBEDDER, see
  tests/conftest.py) through a stand-in ``edge-sdk`` that links DIR to them and says so; any other
  command, other exports included, runs for real.

Run: ``EDGE_SDK_TEST_BUNDLE=... EDGE_SDK_TEST_EMBEDDER=... python -m pytest tests/unit/test_docs_commands.py``
(the path check is fast; the runnable blocks are marked e2e)
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.M | re.S)
SKIPPED = {  # first words of lines that are not run, and why
    "pip install": "the test environment is the installation",
}
REUSED_EXPORTS = {"smollm2-135m-instruct": "EDGE_SDK_DOCS_SMOLLM2", "all-minilm-l6-v2": "EDGE_SDK_DOCS_MINILM"}


def blocks(runnable: bool | None = None) -> list[tuple[str, int, str, str]]:
    """(document, line, info string, body) of every fenced shell block (only the runnable ones, or the others)."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            info = m.group(1).strip().split()
            if not info or info[0] not in ("bash", "sh", "shell", "console"):
                continue
            marked = "runnable" in info[1:]
            if runnable is None or marked == runnable:
                out.append((doc.relative_to(ROOT).as_posix(), text[:m.start()].count("\n") + 1, " ".join(info),
                            m.group(2)))
    return out


def commands(body: str) -> list[str]:
    """The block's commands: lines joined at trailing backslashes, comments and prompts kept as they are."""
    lines, current = [], ""
    for line in body.splitlines():
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    return lines


# --- every path a command names exists (fast, no model) ---------------------------------------------

OUTPUT_OPTIONS = ("--output", "-o", "--save")  # what a command writes need not exist yet
GENERATED = {"out", "dist", "bundles", "fonts"}  # folders commands in the docs create


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote in prose-like commands: check what can be split
        return command.split("#")[0].split()


def test_every_path_a_documented_command_names_exists():
    """Catches `--adapter lora/json` when the adapter lives in examples/lora: any relative path with a
    folder in it must exist in the checkout, unless it is (under) something the docs' commands write."""
    missing = []
    top = {p.name for p in ROOT.iterdir()}
    for doc, line, _, body in blocks():
        for command in commands(body):
            words = _words(command)
            for i, word in enumerate(words):
                path = word.split("=", 1)[1] if re.match(r"^[A-Za-z_][\w-]*=", word) else word  # --adapters n=PATH
                if ("/" not in path or path.startswith(("/", "~", "$", "-", "http", "file:", "'", "<", "./", "../"))
                        or (i and words[i - 1] in OUTPUT_OPTIONS) or "*" in path or "://" in path):  # a URL
                    continue
                parts = Path(path).parts
                if parts[0] not in top and parts[0] not in GENERATED:
                    if parts[0][:1].isupper() or parts[0] in ("path", "your"):  # a placeholder: BUNDLE/..., path/to
                        continue
                    missing.append(f"{doc}:{line}: {path} ({command[:80]})")
                    continue
                if parts[0] in GENERATED or any(p in GENERATED for p in parts[1:-1]):
                    continue
                if parts[0] in top and not (ROOT / path).exists():
                    missing.append(f"{doc}:{line}: {path} ({command[:80]})")
    assert missing == [], "\n".join(missing)


def test_the_marker_is_used():
    assert len(blocks(runnable=True)) >= 2, "the runnable marker went missing from the docs"


# --- the runnable blocks, run (real model) --------------------------------------------------------------

SHIM = '''#!{python}
"""edge-sdk, except that a default export (alias, --output, nothing else) links the session's bundle."""
import os, sys
args = sys.argv[1:]
reuse = {reuse!r}
if len(args) == 4 and args[0] == "export" and args[1] in reuse and args[2] in ("--output", "-o") \\
        and os.environ.get(reuse[args[1]]):
    out = os.path.abspath(args[3])
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not os.path.exists(out):
        os.symlink(os.environ[reuse[args[1]]], out)
    print(f"(docs test) reused the session's {{args[1]}} bundle for {{args[3]}} instead of exporting again")
    sys.exit(0)
from edge_sdk.cli import main
sys.exit(main(args))
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, smollm2_bundle, minilm_bundle):
    work = tmp_path_factory.mktemp("docs")
    for entry in ROOT.iterdir():  # the checkout's folders, read-only by convention; outputs go here
        if entry.name not in (".git", ".venv", "bundles", "dist") and not entry.name.endswith(".egg-info"):
            (work / entry.name).symlink_to(entry)
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "edge-sdk"
    shim.write_text(SHIM.format(python=sys.executable, reuse=REUSED_EXPORTS))
    shim.chmod(0o755)
    env = dict(os.environ, PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
               EDGE_SDK_DOCS_SMOLLM2=str(smollm2_bundle), EDGE_SDK_DOCS_MINILM=str(minilm_bundle),
               PYTHONPATH=str(ROOT))
    return work, env


def _index_reachable() -> bool:
    """Whether pip's package index answers (a device build downloads the target's wheels from it)."""
    import socket
    import urllib.parse

    host = urllib.parse.urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")).hostname or "pypi.org"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        return False
    return True


def _script(body: str) -> tuple[str, list[str]]:
    lines, skipped = [], []
    offline = None
    for command in commands(body):
        why = next((w for prefix, w in SKIPPED.items() if command.startswith(prefix)), None)
        if why is None and command.startswith("edge-sdk package"):
            offline = (not _index_reachable()) if offline is None else offline
            why = "it downloads the target's wheels and the package index cannot be reached" if offline else None
        if why:
            skipped.append(f"{command} ({why})")
            lines.append(f"echo {shlex.quote('(docs test) skipped: ' + command)}")
        else:
            lines.append(f"echo {shlex.quote('$ ' + command)}")
            lines.append(command)
    return "\n".join(lines), skipped


@pytest.mark.e2e
@pytest.mark.parametrize("doc, line, info, body", blocks(runnable=True),
                         ids=[f"{d}:{n}" for d, n, _, _ in blocks(runnable=True)])
def test_runnable_block(doc, line, info, body, workdir):
    work, env = workdir
    script, skipped = _script(body)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{doc}:{line} failed (exit {proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if skipped:
        print(f"{doc}:{line}: skipped " + "; ".join(skipped))


def test_the_app_looks_where_the_docs_export():
    """The chat app finds its default bundles where the README and docs/ tell a user to export them."""
    from mobile_demo.bundle_paths import DEFAULT_EMBEDDER, DEFAULT_MODEL, EMBEDDER_DIR

    outputs: dict[str, set[str]] = {}
    for _, _, _, body in blocks():
        for command in commands(body):
            words = _words(command)
            if words[:2] == ["edge-sdk", "export"] and "--output" in words and len(words) > 3:
                outputs.setdefault(words[2], set()).add(words[words.index("--output") + 1])
    assert f"bundles/{EMBEDDER_DIR}" in outputs[DEFAULT_EMBEDDER], outputs[DEFAULT_EMBEDDER]
    assert {o for o in outputs[DEFAULT_EMBEDDER] if o.startswith("bundles/")} == {f"bundles/{EMBEDDER_DIR}"}
    assert f"bundles/{DEFAULT_MODEL}" in outputs[DEFAULT_MODEL]
