"""Thread counts are bounded at every door: the manifest (test_bundle_trust), a device profile (test_devices), the
API's `threads=` and the EDGE_SDK_THREADS variable. Issue 11's `threads: 300` started 302 threads."""
from __future__ import annotations

import json

import pytest

import edge_sdk
from edge_sdk.cli import main
from edge_sdk.errors import DeviceError


@pytest.mark.parametrize("threads", [0, 65, 300, True, 2.0, "4"])
def test_the_api_refuses_a_thread_count_out_of_range(tiny_bundle, threads):
    with pytest.raises(ValueError, match="threads must be an integer from 1 to 64"):
        edge_sdk.load(tiny_bundle, threads=threads)


@pytest.mark.parametrize("value", ["300", "0", "-1", "four", "2.5"])
def test_edge_sdk_threads_is_checked(tiny_bundle, monkeypatch, capsys, value):
    monkeypatch.setenv("EDGE_SDK_THREADS", value)
    with pytest.raises(DeviceError, match="EDGE_SDK_THREADS must be an integer from 1 to 64"):
        edge_sdk.load(tiny_bundle)
    assert main(["run", str(tiny_bundle), "-p", "hi", "--max-new-tokens", "1"]) == 2
    assert "error: EDGE_SDK_THREADS must be" in capsys.readouterr().err
    monkeypatch.setenv("EDGE_SDK_THREADS", "2")
    assert edge_sdk.load(tiny_bundle).generate("hi", max_new_tokens=1) is not None


def test_a_profile_file_with_300_threads_is_refused_before_loading(tiny_bundle, tmp_path, capsys):
    from edge_sdk.devices import load_profile

    profile = load_profile("x86-64-laptop").to_dict() | {"name": "many-threads", "threads": 300}
    (tmp_path / "p.json").write_text(json.dumps(profile))
    assert main(["run", str(tiny_bundle), "--device", str(tmp_path / "p.json"), "-p", "hi"]) == 2
    assert "field 'threads' must be an integer from 1 to 64, got 300" in capsys.readouterr().err
