"""`edge-sdk run` options as a user types them, each checked against the Python API on the same bundle."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edge_sdk

pytest.importorskip("torch")  # the tiny bundle is exported with torch


def _run(bundle, *args, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(bundle), "--threads", "1", *args],
                          input=stdin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.rstrip("\n"), proc.stderr


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


def test_plain_and_json(tiny_bundle, model):
    want = model.generate("paris france capital", max_new_tokens=12)
    out, err = _run(tiny_bundle, "-p", "paris france capital", "--max-new-tokens", "12")
    assert out == want and "TTFT" in err
    js = json.loads(_run(tiny_bundle, "-p", "paris france capital", "--max-new-tokens", "12", "--json")[0])
    assert js["text"] == want and js["new_tokens"] <= 12 and {"ttft_s", "decode_tok_s", "stop_reason"} <= set(js)


def test_raw_system_and_stdin(tiny_bundle, model):
    assert _run(tiny_bundle, "-p", "the sea", "--raw", "--max-new-tokens", "10")[0] == \
        model.generate("the sea", raw=True, max_new_tokens=10)
    system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the sea"}]
    assert _run(tiny_bundle, "-p", "the sea", "--system", "be brief", "--max-new-tokens", "10")[0] == \
        model.generate(system, max_new_tokens=10)
    assert _run(tiny_bundle, "-p", "-", "--max-new-tokens", "10", stdin="the sea")[0] == \
        model.generate("the sea", max_new_tokens=10)


def test_stop_cuts_before_the_stop_string(tiny_bundle, model):
    full = model.generate("hello world edge device", max_new_tokens=40)
    stop = full[len(full) // 2:len(full) // 2 + 3]
    assert stop.strip() and stop in full
    out = _run(tiny_bundle, "-p", "hello world edge device", "--max-new-tokens", "40", "--stop", stop)[0]
    assert out == full[:full.index(stop)]


def test_seed_reproduces_and_speculative_matches_greedy(tiny_bundle, model):
    args = ["-p", "sea haiku", "--max-new-tokens", "16", "--temperature", "1.0"]
    a = _run(tiny_bundle, *args, "--seed", "7")[0]
    assert a == _run(tiny_bundle, *args, "--seed", "7")[0] == model.generate("sea haiku", max_new_tokens=16,
                                                                               temperature=1.0, seed=7)
    assert len({_run(tiny_bundle, *args, "--seed", str(s))[0] for s in range(4)}) > 1
    greedy = model.generate("paris paris paris france", max_new_tokens=24)
    assert _run(tiny_bundle, "-p", "paris paris paris france", "--max-new-tokens", "24", "--speculative")[0] == greedy
