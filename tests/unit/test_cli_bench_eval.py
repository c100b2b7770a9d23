"""`edge-sdk bench` and `edge-sdk eval` through the CLI entry point on the tiny bundle (no timing checks)."""
from __future__ import annotations

import json

import pytest

from edge_sdk.cli import main

pytest.importorskip("torch")  # the tiny bundle is exported with torch


def _json_out(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_json(tiny_bundle, capsys):
    r = _json_out(capsys, ["bench", str(tiny_bundle), "--prompt-tokens", "120", "--new-tokens", "6",
                           "--repeat", "2", "--warmup", "0", "--threads", "1", "--json"])
    assert r["prompt_tokens"] == 120 and r["new_tokens"] == 6 and r["threads"] == 1 and r["recipe"] == "fp32"
    for key in ("ttft_s", "prefill_tok_s", "decode_tok_s"):
        assert set(r[key]) == {"median", "min", "max"} and r[key]["min"] <= r[key]["median"] <= r[key]["max"]
        assert r[key]["min"] > 0
    assert r["load_s"] > 0 and r["peak_rss_mb"] > 0 and r["bundle_mb"] > 0 and r["speculative"] is None


def test_bench_prompt_keeps_the_template_end_and_is_deterministic(tiny_bundle):
    import edge_sdk
    from edge_sdk.cli.bench import bench_prompt_ids

    m = edge_sdk.load(tiny_bundle, threads=1)
    a, b = bench_prompt_ids(m, 120), bench_prompt_ids(m, 120)
    assert a == b and len(a) == 120
    assert m.tokenizer.decode(a).endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="at least"):
        bench_prompt_ids(m, 3)


def test_bench_speculative_with_prompt_ids_file(tiny_bundle, tmp_path, capsys):
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps({"ids": [5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7], "new_tokens": 99}))
    r = _json_out(capsys, ["bench", str(tiny_bundle), "--prompt-ids", str(ids_file), "--new-tokens", "8",
                           "--repeat", "1", "--warmup", "0", "--speculative", "--json"])
    assert r["prompt_tokens"] == 11 and r["new_tokens"] == 8
    s = r["speculative"]
    assert s["num_draft"] == 8 and 0 <= s["accepted"] <= s["proposed"] and s["forwards"] >= 1


def test_bench_bad_arguments_exit_2(tiny_bundle, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"ids": []}')
    assert main(["bench", str(tiny_bundle), "--prompt-ids", str(bad)]) == 2
    assert main(["bench", str(tiny_bundle), "--repeat", "0"]) == 2
    assert main(["bench", str(tiny_bundle), "--prompt-tokens", "200", "--new-tokens", "100", "--repeat", "1"]) == 2
    err = capsys.readouterr().err
    assert "non-empty JSON list" in err and "--repeat must be >= 1" in err and "maximum context" in err


def test_eval_json_with_reference(tiny_bundle, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. hello world, paris france capital. " * 3)
    r = _json_out(capsys, ["eval", str(tiny_bundle), "--reference", str(tiny_bundle), "--text", str(text),
                           "--window", "32", "--max-new-tokens", "4", "--threads", "1", "--json"])
    p = r["perplexity"]
    assert p["ppl"] > 1 and p["window"] == 32 and p["tokens"] == p["text_tokens"] - 1
    assert r["reference"]["perplexity"]["ppl"] == pytest.approx(p["ppl"]) and r["ppl_delta_rel"] == pytest.approx(0)
    a = r["greedy_agreement"]
    assert a["identical"] == a["total"] > 0 and a["match_fraction"] == 1.0


def test_eval_table_without_reference(tiny_bundle, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("sea haiku sky blue light water. " * 4)
    assert main(["eval", str(tiny_bundle), "--text", str(text), "--window", "16", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "reference" not in out
    assert main(["eval", str(tiny_bundle), "--text", str(tmp_path / "missing.txt")]) == 2


def test_bench_and_eval_show_progress_unless_quiet(tiny_bundle, capsys):
    argv = ["bench", str(tiny_bundle), "--prompt-tokens", "120", "--new-tokens", "3", "--repeat", "2", "--warmup", "1",
            "--threads", "1", "--json"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warm-up run 1/1" in err and "run 2/2: TTFT" in err
    assert main(argv + ["--quiet"]) == 0 and capsys.readouterr().err == ""
    assert main(["eval", str(tiny_bundle), "--window", "64", "--threads", "1"]) == 0
    assert "perplexity: window 1/" in capsys.readouterr().err


def test_export_quiet_is_quiet(tiny_model_dir, tmp_path):
    """transformers' and tqdm's progress bars included (they wrote to stderr under --quiet)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "export", str(tiny_model_dir), "--output",
                           str(tmp_path / "b"), "--recipe", "fp32", "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1 and "validation passed" in proc.stdout
