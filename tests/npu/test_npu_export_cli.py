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
    assert set(m["graph"]["context_binaries"]["files"].values()) <= set(m["files"])
    # the bundle's own profile: QNN only, CPU fallback disabled
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(out), "--prompt", "hello", "--max-new-tokens", "6",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["new_tokens"] >= 1  # stdout is exactly the JSON (QNN's banner goes to stderr)
