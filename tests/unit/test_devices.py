"""Device profiles: shipped files validate, bad variants are rejected by field, the CLI lists them."""
from __future__ import annotations

import copy
import json

import pytest

from edge_sdk.devices import (
    DEFAULT_PROFILE, PROFILE_DIR, DeviceProfile, list_profiles, load_profile, profile_names, validate_profile,
)
from edge_sdk.errors import DeviceError

REQUIRED = {"android-midrange", "snapdragon-8-gen3", "iphone-15", "raspberry-pi-5", "x86-64-laptop"}


def raw(name: str) -> dict:
    return json.loads((PROFILE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_required_profiles_ship():
    assert REQUIRED <= set(profile_names())
    assert DEFAULT_PROFILE in profile_names()


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_shipped_profile_validates(name):
    p = load_profile(name)
    assert isinstance(p, DeviceProfile) and p.name == name
    assert p.to_dict() == raw(name) | {"soc": p.soc, "htp_arch": p.htp_arch, "prefill_chunk": p.prefill_chunk,
                                       "kv_cache": p.kv_cache, "kleidiai": p.kleidiai}


def test_list_profiles_sorted():
    names = [p.name for p in list_profiles()]
    assert names == sorted(names) and REQUIRED <= set(names)


def test_profile_choices():
    sd = load_profile("snapdragon-8-gen3")
    assert sd.execution_providers[0] == "QNNExecutionProvider" and sd.is_npu and sd.npu_only
    assert (sd.flavour, sd.recipe, sd.htp_arch, sd.prefill_chunk) == ("static", "w8a16-qdq", "v75", 64)
    for name in ("android-midrange", "iphone-15", "raspberry-pi-5", "x86-64-laptop"):
        p = load_profile(name)
        assert (p.flavour, p.recipe, p.npu_only) == ("fused", "int4-b32-a32", False)
        assert p.execution_providers[-1] == "CPUExecutionProvider"
    assert "Core ML" in load_profile("iphone-15").description


def test_load_by_path(tmp_path):
    path = tmp_path / "my-board.json"
    data = raw("raspberry-pi-5") | {"name": "my-board", "threads": 3}
    path.write_text(json.dumps(data))
    assert load_profile(path).threads == 3
    assert load_profile(str(path)).name == "my-board"


def test_unknown_name_lists_known_names():
    with pytest.raises(DeviceError) as e:
        load_profile("nokia-3310")
    for name in REQUIRED:
        assert name in str(e.value)


def test_bad_json_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    for text in ("{not json", "[" * 100_000, "\udcff", " " * (2 << 20)):  # broken, too deep, not UTF-8, too big
        path.write_text(text, errors="surrogateescape")
        with pytest.raises(DeviceError, match="broken.json"):
            load_profile(path)


def _variant(change):
    data = copy.deepcopy(raw("snapdragon-8-gen3"))
    change(data)
    return data


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("recipe"), "recipe"),
    (lambda d: d.pop("threads"), "threads"),
    (lambda d: d.pop("reasons"), "reasons"),
    (lambda d: d.update(recipe="int3"), "recipe"),
    (lambda d: d.update(flavour="turbo"), "flavour"),
    (lambda d: d.update(cpu_arch="mips"), "cpu_arch"),
    (lambda d: d.update(execution_providers=["QNNExecutionProvider", "TPUExecutionProvider"]), "execution_providers"),
    (lambda d: d.update(execution_providers="QNNExecutionProvider"), "execution_providers"),
    (lambda d: d.update(execution_providers=[]), "execution_providers"),
    (lambda d: d.update(memory_budget_mb=-512), "memory_budget_mb"),
    (lambda d: d.update(max_context=0), "max_context"),
    (lambda d: d.update(threads=2.5), "threads"),
    (lambda d: d.update(threads=True), "threads"),
    (lambda d: d.update(npu_only="yes"), "npu_only"),
    (lambda d: d.update(thread=4), "thread"),  # typo'd key
    (lambda d: d.update(execution_providers=["QNNExecutionProvider", "CPUExecutionProvider"]), "npu_only"),
    (lambda d: d.update(flavour="fused"), "flavour"),  # contrib ops cannot run on QNN
    (lambda d: d.pop("prefill_chunk"), "prefill_chunk"),
    (lambda d: d.update(prefill_chunk=4096), "prefill_chunk"),
    (lambda d: d["reasons"].pop("recipe"), "reasons"),
    (lambda d: d["reasons"].update(recipe=""), "reasons"),
    # Bounded as a manifest's values are (issue 11's `threads: 300`, through a profile file: issue 24)
    (lambda d: d.update(threads=300), "threads"),
    (lambda d: d.update(max_context=10**9), "max_context"),
    (lambda d: d.update(memory_budget_mb=1 << 40), "memory_budget_mb"),
])
def test_invalid_variants_name_the_field(change, field):
    with pytest.raises(DeviceError) as e:
        validate_profile(_variant(change), "variant.json")
    assert f"'{field}'" in str(e.value) and "variant.json" in str(e.value)


def test_profile_file_loaded_by_path_keeps_its_name(tmp_path):
    # Only shipped profiles must match their file name; a user file is taken as it is.
    path = tmp_path / "other.json"
    path.write_text(json.dumps(raw("iphone-15")))
    assert load_profile(path).name == "iphone-15"


def test_cli_devices_json(capsys):
    from edge_sdk.cli import main

    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in data} >= REQUIRED
    for d in data:
        validate_profile(d, "cli output")


def test_cli_devices_table(capsys):
    from edge_sdk.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert name in out
    assert "w8a16-qdq" in out and "QNN" in out


def test_cli_module_imports_only_argparse():
    import subprocess
    import sys

    code = ("import sys; import edge_sdk.cli.devices; "
            "print(sorted(m for m in ('numpy', 'onnxruntime', 'torch', 'jinja2', 'json') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "numpy" not in out and "onnxruntime" not in out and "torch" not in out
