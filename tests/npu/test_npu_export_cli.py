"""`edge-sdk export --device snapdragon-8-gen3` end to end on a tiny model, then `edge-sdk run` on the HTP."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime_qnn")
pytest.importorskip("torch")
pytestmark = pytest.mark.npu


def test_export_for_snapdragon_then_run_on_the_htp(tiny_model_dir, tmp_path):
    from edge_sdk.cli import main

    out = tmp_path / "npu"
    assert main(["export", str(tiny_model_dir), "--output", str(out), "--device", "snapdragon-8-gen3", "--quiet"]) == 0
    m = json.loads((out / "edge_manifest.json").read_text())
    assert m["graph"]["flavour"] == "static" and m["quantization"]["recipe"] == "w8a16-qdq"
    assert m["device"]["npu_only"] is True and m["device"]["execution_providers"] == ["QNNExecutionProvider"]
    assert m["validation"]["passed"] is True
    assert m["validation"]["htp_offload"]["checked"] and m["validation"]["htp_offload"]["full_offload"]
    htp = m["validation"]["htp_offload"]
    assert htp["positions_compared"] == htp["prompt_tokens"] + 1 >= 3  # every prompt position and the step
    assert set(m["graph"]["context_binaries"]["files"].values()) <= set(m["files"])
    # the bundle's own profile: QNN only, CPU fallback disabled
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(out), "--prompt", "hello", "--max-new-tokens", "6",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["new_tokens"] >= 1  # stdout is exactly the JSON (QNN's banner goes to stderr)


def test_an_export_whose_htp_check_could_not_run_says_so(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Without the HTP (here: onnxruntime-qnn made unavailable) the export still writes a bundle, but the
    manifest and the command's last line say that full offload was not checked."""
    from edge_sdk.cli import main
    from edge_sdk.runtime import qnn

    monkeypatch.setattr(qnn, "is_available", lambda: False)
    out = tmp_path / "npu"
    assert main(["export", str(tiny_model_dir), "--output", str(out), "--device", "snapdragon-8-gen3", "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "HTP offload NOT checked" in line and "onnxruntime-qnn is not installed" in line
    htp = json.loads((out / "edge_manifest.json").read_text())["validation"]["htp_offload"]
    assert htp["checked"] is False and "onnxruntime-qnn" in htp["reason"]
