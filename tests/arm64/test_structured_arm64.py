"""A `--structured` linux-aarch64 device build on an emulated arm64 CPU: the build's own install (its
llguidance aarch64 wheel, its edge-sdk) runs one schema-constrained generation of the real SmolLM2."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ..conftest import require_pypi
from .conftest import package_and_install

pytestmark = [pytest.mark.arm64, pytest.mark.e2e]

HERE = Path(__file__).resolve().parent
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "city": {"type": "string", "maxLength": 30}},
          "required": ["name", "age", "city"], "additionalProperties": False}


def test_a_schema_constrained_answer_on_arm64(smollm2_bundle, arm64_device, tmp_path_factory):
    jsonschema = pytest.importorskip("jsonschema")
    require_pypi("the linux-aarch64 build (it downloads aarch64 wheels)")
    work = tmp_path_factory.mktemp("pi-structured")
    build = package_and_install(smollm2_bundle, arm64_device, work, extra=("--structured",))
    assert json.loads((build / "device_build.json").read_text())["target"]["min_glibc"] == "2.31"
    (work / "schema.json").write_text(json.dumps(SCHEMA))
    t0 = time.perf_counter()
    proc = arm64_device.run([str(build / ".venv" / "bin" / "python"), str(HERE / "structured_probe.py"),
                             str(build / "bundle"), str(build / "device_profile.json"), str(work / "schema.json")],
                            cwd=work, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"arm64 structured: {info['new_tokens']} tokens in {info['seconds']:.0f} s "
          f"(wall {time.perf_counter() - t0:.0f} s): {info['text']}")
    assert info["machine"] == "aarch64"
    venv = str(build / ".venv")
    assert info["edge_sdk"].startswith(venv) and info["llguidance"].startswith(venv)  # the build's own install
    assert info["finish_reason"] == "stop", info
    answer = json.loads(info["text"])
    jsonschema.validate(answer, SCHEMA)
    assert "Ana" in answer["name"] and answer["age"] == 34, answer
