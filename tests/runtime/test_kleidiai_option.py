"""arm64 exactness: a profile's `kleidiai: false` reaches onnxruntime as `mlas.disable_kleidiai=1`.

onnxruntime's KleidiAI int4 kernels round MatMulNBits' block scales to bf16 (docs/deploy.md). The arm64 CPU
profiles turn them off; the entry must arrive in the SessionOptions the runtime hands to onnxruntime, by
every route a profile takes: a named profile at load, a device build's profile file, and the manifest an
export for that profile writes. The emulated-arm64 test (tests/arm64/test_kleidiai.py) shows it takes effect.
"""
from __future__ import annotations

import json
import shutil

import pytest

import edge_sdk
from edge_sdk.devices import load_profile, validate_profile
from edge_sdk.errors import DeviceError
from edge_sdk.runtime import providers

KEY = "mlas.disable_kleidiai"


@pytest.fixture
def seen(monkeypatch):
    """The SessionOptions of every InferenceSession the runtime opens."""
    options = []
    real = providers.ort.InferenceSession

    def spy(path, sess_options=None, **kw):
        options.append(sess_options)
        return real(path, sess_options=sess_options, **kw)

    monkeypatch.setattr(providers.ort, "InferenceSession", spy)
    return options


def _entry(so) -> str | None:
    try:
        return so.get_session_config_entry(KEY)
    except RuntimeError:  # onnxruntime raises for a key that was never set
        return None


@pytest.mark.parametrize("profile", ["android-midrange", "raspberry-pi-5", "iphone-15"])
def test_arm64_cpu_profiles_turn_kleidiai_off_in_the_session(tiny_bundle, seen, profile):
    edge_sdk.load(tiny_bundle, device=profile)
    assert seen and _entry(seen[-1]) == "1"


def test_a_device_builds_profile_file_turns_it_off(tiny_bundle, seen, tmp_path):
    path = tmp_path / "device_profile.json"  # what `edge-sdk package` ships and run.sh loads with
    path.write_text(json.dumps(load_profile("raspberry-pi-5").to_dict()))
    edge_sdk.load(tiny_bundle, device=str(path))
    assert _entry(seen[-1]) == "1"


def test_x86_and_unset_leave_onnxruntimes_choice(tiny_bundle, seen, tmp_path):
    edge_sdk.load(tiny_bundle, device="x86-64-laptop")
    assert _entry(seen[-1]) is None
    data = {**load_profile("raspberry-pi-5").to_dict(), "kleidiai": True}  # opting in leaves it on
    (tmp_path / "on.json").write_text(json.dumps(data))
    edge_sdk.load(tiny_bundle, device=str(tmp_path / "on.json"))
    assert _entry(seen[-1]) is None


def test_the_manifest_carries_it_when_no_profile_is_named(tiny_bundle, seen, tmp_path):
    from edge_sdk.exporters.bundle import write_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    manifest["device"]["kleidiai"] = False
    write_manifest(bundle, manifest)
    edge_sdk.load(bundle)
    assert _entry(seen[-1]) == "1"


def test_export_for_an_arm64_profile_records_it(tiny_model_dir, tmp_path):
    from edge_sdk.exporters.export import export

    manifest = export(str(tiny_model_dir), tmp_path / "pi", device="raspberry-pi-5", recipe="fp32", max_context=64,
                      validate=False, progress=False)
    assert manifest["device"]["kleidiai"] is False
    x86 = export(str(tiny_model_dir), tmp_path / "x86", recipe="fp32", max_context=64, validate=False, progress=False)
    assert "kleidiai" not in x86["device"]


def test_a_profile_is_refused_kleidiai_off_arm64():
    data = {**load_profile("x86-64-laptop").to_dict(), "kleidiai": False,
            "reasons": {**load_profile("x86-64-laptop").reasons, "kleidiai": "exact"}}
    with pytest.raises(DeviceError, match="kleidiai.*arm64"):
        validate_profile(data, "x86.json")
    with pytest.raises(DeviceError, match="kleidiai.*must be bool"):
        validate_profile({**load_profile("raspberry-pi-5").to_dict(), "kleidiai": "no"}, "pi.json")
