"""What a user types wrong gets one `error:` line and exit 2 before any model loads; no traceback, ever.

The bundle path below does not exist: a bad option must be reported before the bundle is even looked at.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from edge_sdk.cli import main

NOWHERE = "/nonexistent/bundle"


@pytest.mark.parametrize("option, words", [
    (["--max-new-tokens", "-1"], "--max-new-tokens: must be an integer >= 0"),
    (["--max-new-tokens", "lots"], "--max-new-tokens: 'lots' is not an integer"),
    (["--temperature", "-1"], "--temperature: must be a number >= 0"),
    (["--temperature", "nan"], "--temperature: must be a number >= 0"),
    (["--top-p", "2"], "--top-p: must be in (0, 1]"),
    (["--top-p", "0"], "--top-p: must be in (0, 1]"),
    (["--min-p", "1"], "--min-p: must be in [0, 1)"),
    (["--top-k", "-3"], "--top-k: must be an integer >= 0"),
    (["--repetition-penalty", "0"], "--repetition-penalty: must be a number > 0"),
    (["--threads", "0"], "--threads: must be an integer from 1 to 64"),
    (["--threads", "300"], "--threads: must be an integer from 1 to 64"),
    (["--seed", "-1"], "--seed: must be an integer >= 0"),
    (["--stop", ""], "--stop: must not be empty"),
    (["--stop", "x" * 1025], "--stop: a stop string is at most 1024 characters"),
    (["--stop", "a"] * 17, "--stop: at most 16 stop strings"),
])
@pytest.mark.parametrize("command", ["run", "chat"])
def test_bad_values_fail_while_parsing(capsys, command, option, words):
    argv = [command, NOWHERE] + (["-p", "hi"] if command == "run" else []) + option
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and "Traceback" not in err, err


@pytest.mark.parametrize("option, words", [
    (["--lr", "0"], "--lr: must be a number between 0 and 1 (exclusive)"),
    (["--lr", "1"], "--lr: must be a number between 0 and 1 (exclusive)"),
    (["--held-out", "nan"], "--held-out: must be a number between 0 and 1 (exclusive)"),
    (["--threshold", "high"], "--threshold: 'high' is not a number"),
])
def test_distill_options_fail_while_parsing(capsys, option, words):
    with pytest.raises(SystemExit) as e:
        main(["distill", NOWHERE, "--data", NOWHERE, "--output", NOWHERE, *option])
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and "Traceback" not in err, err


def test_speculative_with_sampling_is_refused_before_loading(capsys):
    assert main(["run", NOWHERE, "-p", "hi", "--speculative", "--temperature", "0.7"]) == 2
    err = capsys.readouterr().err
    assert "--speculative needs greedy decoding" in err and "does not exist" not in err


def test_export_refuses_a_tiny_context_while_parsing(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "smollm2-135m-instruct", "--output", "/tmp/x", "--max-context", "8"])
    assert e.value.code == 2 and "--max-context: must be an integer from 16" in capsys.readouterr().err


def test_export_help_lists_every_recipe(capsys):
    from edge_sdk.exporters.recipes import RECIPES

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    for name, recipe in RECIPES.items():
        assert f"  {name} " in out, name


def _cli(*args, stdin=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "edge_sdk", *args], input=stdin, capture_output=True, timeout=timeout)


def test_non_utf8_input(tiny_bundle):
    proc = _cli("run", str(tiny_bundle), "-p", "-", stdin=b"caf\xe9 au lait\n")
    assert proc.returncode == 2 and b"not UTF-8 text (byte 3" in proc.stderr and b"Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(tiny_bundle), "-p", b"caf\xe9"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 2 and b"not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr


def test_a_closed_pipe_is_not_a_traceback(tiny_bundle):
    """`edge-sdk run ... | head -c 5`: the reader leaves early; we stop quietly with the shell's code for it."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_sdk", "run", str(tiny_bundle), "-p", "hello",
                             "--max-new-tokens", "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(5)
    proc.stdout.close()  # what `head` does
    err = proc.stderr.read()
    assert proc.wait(120) == 141 and b"Traceback" not in err and b"Error" not in err, err
