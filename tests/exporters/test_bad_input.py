"""Bad input to `edge-sdk export`: one clear line, a non-zero exit, nothing half-written."""
from __future__ import annotations

import json

import pytest

from edge_sdk.cli import main

pytest.importorskip("torch")


def _export(capsys, *argv):
    code = main(["export", *argv, "--quiet"])
    err = capsys.readouterr().err.strip()
    return code, err


def _nothing_written(parent):
    leftovers = [p.name for p in parent.iterdir() if p.name.startswith(".") and "partial" in p.name]
    assert not leftovers, leftovers


def test_missing_path(capsys, tmp_path):
    code, err = _export(capsys, str(tmp_path / "nope"), "--output", str(tmp_path / "out"))
    assert code == 2 and "not an existing file or folder" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_file_that_is_not_gguf(capsys, tmp_path):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"PK\x03\x04 definitely a zip")
    code, err = _export(capsys, str(f), "--output", str(tmp_path / "out"))
    assert code == 2 and "is not a GGUF file" in err
    assert not (tmp_path / "out").exists()


def test_truncated_gguf(capsys, tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from edge_sdk.exporters.testing import write_gguf

    f = write_gguf(tmp_path / "tiny.gguf", block_count=1, tensors={"token_embd.weight": np.zeros((64, 256), np.float32)})
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    code, err = _export(capsys, str(f), "--output", str(tmp_path / "out"))
    assert code == 2 and "truncated" in err
    assert not (tmp_path / "out").exists()


def test_unsupported_architecture(capsys, tmp_path):
    d = tmp_path / "gpt2-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 10}))
    code, err = _export(capsys, str(d), "--output", str(tmp_path / "out"))
    assert code == 2 and "'gpt2' is not supported" in err and "llama" in err and "qwen2" in err


def test_folder_without_config(capsys, tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    code, err = _export(capsys, str(d), "--output", str(tmp_path / "out"))
    assert code == 2 and "has no config.json" in err


def test_unwritable_output(capsys, tmp_path, tiny_model_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(blocker / "out"))
    assert code == 2 and "output" in err


def test_existing_output_needs_force(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(out))
    assert code == 2 and "--force" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_failed_validation_leaves_nothing(capsys, tmp_path, tiny_model_dir, monkeypatch):
    from edge_sdk.errors import ValidationFailedError
    from edge_sdk.exporters import validate

    def failing(*a, **k):
        raise ValidationFailedError("validation failed: logits: max abs logits difference 0.5 exceeds 0.001")

    monkeypatch.setattr(validate, "validate_bundle", failing)
    out = tmp_path / "out"
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(out))
    assert code == 3 and "logits" in err and "0.5" in err
    assert not out.exists()
    _nothing_written(tmp_path)


def test_force_never_replaces_a_folder_that_is_not_a_bundle(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"mine")
    (out / "edge_manifest.json").write_text('{"format": "something else"}')
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(out), "--force", "--recipe", "fp32")
    assert code == 2 and "is not a previous bundle" in err and "\n" not in err
    assert (out / "keep.jpg").read_bytes() == b"mine"
    _nothing_written(tmp_path)


def test_failed_export_removes_the_parent_folders_it_created(capsys, tmp_path, tiny_model_dir, monkeypatch):
    from edge_sdk.errors import ValidationFailedError
    from edge_sdk.exporters import validate

    def failing(*a, **k):
        raise ValidationFailedError("validation failed: (simulated)")

    monkeypatch.setattr(validate, "validate_bundle", failing)
    code, _ = _export(capsys, str(tiny_model_dir), "--output", str(tmp_path / "new" / "deeper" / "out"))
    assert code == 3 and list(tmp_path.iterdir()) == []


def test_force_replaces_a_previous_bundle(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "edge_manifest.json").write_text('{"format": "edge-bundle"}')
    (out / "stale.txt").write_text("old")
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(out), "--force", "--recipe", "fp32")
    assert code == 0, err
    assert not (out / "stale.txt").exists() and (out / "edge_manifest.json").exists()
    _nothing_written(tmp_path)


def test_hub_id_offline_names_the_model_and_the_fix(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _export(capsys, "HuggingFaceTB/SmolLM2-135M-Instruct", "--output", str(tmp_path / "out"))
    assert code == 2
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in err and "edge-sdk export DIR" in err


def test_unknown_recipe_and_device(capsys, tmp_path, tiny_model_dir):
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(tmp_path / "o"), "--recipe", "int3")
    assert code == 2 and "int4-b32" in err
    code, err = _export(capsys, str(tiny_model_dir), "--output", str(tmp_path / "o"), "--device", "toaster")
    assert code == 2 and "x86-64-laptop" in err


def test_no_validate_writes_a_bundle_marked_unvalidated(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    code = main(["export", str(tiny_model_dir), "--output", str(out), "--recipe", "fp32", "--no-validate", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "validation skipped" in captured.out
    m = json.loads((out / "edge_manifest.json").read_text())
    assert m["validation"] == {"passed": None, "skipped": True} and "model.onnx" in m["files"]
