"""Run-time adapters (--adapters) on a tiny random llama: each matches PEFT, no adapter is bit-identical to a
bundle exported without adapters, switching in one loaded model equals separately exported bundles, and
`edge-sdk adapter add` packs one more without re-exporting."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import edge_sdk  # noqa: E402
from edge_sdk.errors import BundleError, OutputExistsError, UnsupportedModelError  # noqa: E402
from edge_sdk.exporters.export import export  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402

from .test_adapters import IDS, _reference, make_adapter, peft_model  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("switch")
    base = make_tiny_model_dir(root / "tiny-llama")
    one = make_adapter(base, root / "one", seed=1)
    two = make_adapter(base, root / "two", seed=2, r=4, lora_alpha=8, use_rslora=True,
                       target_modules=["q_proj", "v_proj", "down_proj"])
    bundle = root / "switch"
    manifest = export(str(base), bundle, recipe="fp32", adapters={"one": one, "two": two}, progress=False)
    plain = root / "plain"
    export(str(base), plain, recipe="fp32", progress=False, validate=False)
    return {"root": root, "base": base, "one": one, "two": two, "bundle": bundle, "manifest": manifest, "plain": plain}


def _forward(model, ids=IDS):
    model.decoder.reset()  # engine-level calls bypass the decoder's token list
    return model.engine.forward(ids, all_logits=True)


def test_each_adapter_is_validated_against_peft(setup):
    lora = setup["manifest"]["lora"]
    assert set(lora["adapters"]) == {"one", "two"} and lora["layers"] == 2
    for name in ("one", "two"):
        checks = {c["name"]: c for c in lora["adapters"][name]["validation"]["checks"]}
        assert lora["adapters"][name]["validation"]["passed"] and checks["logits"]["figures"]["max_abs_diff"] <= 1e-3
        assert checks["greedy_tokens"]["figures"]["identical"] == 3
    assert setup["manifest"]["files"]["adapters/one.npz"]["bytes"] > 0


def test_switching_in_one_model_equals_peft_and_separate_bundles(setup, tmp_path):
    model = edge_sdk.load(setup["bundle"])
    assert model.adapters == ["one", "two"] and model.adapter is None
    plain = edge_sdk.load(setup["plain"])
    base_logits = _forward(plain)
    assert np.array_equal(_forward(model), base_logits)  # no adapter: bit for bit the base model
    for name in ("one", "two", None, "two", "one"):
        model.adapter = name
        ours = _forward(model)
        if name is None:
            assert np.array_equal(ours, base_logits)
            continue
        ref = _reference(peft_model(setup["base"], setup[name]), IDS)
        assert np.abs(ours - ref).max() <= 1e-3
        merged = tmp_path / f"merged-{name}"
        if not merged.exists():
            export(str(setup["base"]), merged, recipe="fp32", adapter=str(setup[name]), progress=False, validate=False)
        assert np.abs(ours - _forward(edge_sdk.load(merged))).max() <= 1e-4


def test_generate_and_chat_take_an_adapter_per_call(setup):
    model = edge_sdk.load(setup["bundle"])
    base = model.generate("hello world", max_new_tokens=12)
    one = model.generate("hello world", max_new_tokens=12, adapter="one")
    assert one != base and model.adapter is None  # a per-call adapter does not change the default
    assert model.generate("hello world", max_new_tokens=12) == base  # the cache was not reused across adapters
    from edge_sdk.exporters.references import hf_greedy
    from edge_sdk.runtime.generate import generate_tokens
    from edge_sdk.runtime.sampling import make_sampler

    model.adapter = "two"
    model.decoder.reset()
    got = list(generate_tokens(model.decoder, IDS[:10], max_new_tokens=16, sampler=make_sampler(0.0), eos_ids=[2]))
    assert got == hf_greedy(peft_model(setup["base"], setup["two"]), IDS[:10], 16, [2])
    chat = model.chat(adapter="one")
    first = chat.send("hello", max_new_tokens=6)
    assert first == edge_sdk.load(setup["bundle"]).chat(adapter="one").send("hello", max_new_tokens=6)
    with pytest.raises(ValueError, match="unknown adapter 'three'.*one, two"):
        model.generate("hi", adapter="three")
    with pytest.raises(ValueError, match="no adapter|unknown adapter"):
        edge_sdk.load(setup["plain"]).generate("hi", adapter="one")


def test_cli_run_and_adapter_ls(setup, capsys):
    from edge_sdk.cli import main

    assert main(["run", str(setup["bundle"]), "--adapter", "one", "--prompt", "hello world", "--max-new-tokens", "12",
                 "--json"]) == 0
    text = json.loads(capsys.readouterr().out)["text"]
    assert text == edge_sdk.load(setup["bundle"]).generate("hello world", max_new_tokens=12, adapter="one")
    assert main(["run", str(setup["bundle"]), "--adapter", "nope", "--prompt", "hi"]) != 0
    err = capsys.readouterr().err
    assert "unknown adapter 'nope'" in err and "Traceback" not in err
    assert main(["adapter", "ls", str(setup["bundle"]), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"one", "two"}


def test_adapter_add_without_reexport(setup, tmp_path):
    import shutil

    from edge_sdk.exporters.adapters.add import add_adapter

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    (bundle / "edge_manifest.sig").write_text("stale")  # a signature of the old manifest goes away
    three = make_adapter(setup["base"], tmp_path / "three", seed=3, r=6, target_modules=["o_proj", "gate_proj"])
    entry = add_adapter(bundle, "three", three, source=str(setup["base"]))
    assert entry["validation"]["passed"] and not (bundle / "edge_manifest.sig").exists()
    model = edge_sdk.load(bundle)  # every hash checked, the new file's too
    assert model.adapters == ["one", "three", "two"]
    model.adapter = "three"
    assert np.abs(_forward(model) - _reference(peft_model(setup["base"], three), IDS)).max() <= 1e-3
    with pytest.raises(OutputExistsError, match="already has an adapter 'three'"):
        add_adapter(bundle, "three", three)
    with pytest.raises(BundleError, match="no adapter slots"):
        add_adapter(setup["plain"], "x", three)
    before = (bundle / "edge_manifest.json").read_bytes()
    wrong = make_adapter(setup["base"], tmp_path / "wrong", seed=4)
    cfg = json.loads((wrong / "adapter_config.json").read_text())
    cfg["use_dora"] = True
    (wrong / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match="DoRA"):
        add_adapter(bundle, "wrong", wrong)
    assert (bundle / "edge_manifest.json").read_bytes() == before and not (bundle / "adapters" / "wrong.npz").exists()
    # A failed validation puts everything back, the replaced adapter's file included.
    import shutil as sh

    replaced = (bundle / "adapters" / "three.npz").read_bytes()
    other_base = make_tiny_model_dir(tmp_path / "other-base", seed=7)  # same shapes, other weights: PEFT differs
    with pytest.raises(Exception, match="validation failed"):
        add_adapter(bundle, "three", make_adapter(setup["base"], tmp_path / "four", seed=5), force=True,
                    source=str(other_base))
    assert (bundle / "edge_manifest.json").read_bytes() == before
    assert (bundle / "adapters" / "three.npz").read_bytes() == replaced
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    edge_sdk.load(bundle)


def test_a_tampered_adapter_file_is_refused_at_load(setup, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    with open(bundle / "adapters" / "two.npz", "r+b") as f:
        f.seek(200)
        f.write(b"\xff\xff\xff")
    with pytest.raises(BundleError, match="two.npz"):
        edge_sdk.load(bundle)


def test_the_npu_flavour_refuses_run_time_adapters(setup, tmp_path):
    with pytest.raises(UnsupportedModelError, match="merged: --adapter"):
        export(str(setup["base"]), tmp_path / "npu", device="snapdragon-8-gen3", adapters={"one": setup["one"]},
               progress=False)
    assert not (tmp_path / "npu").exists()


@pytest.mark.parametrize("recipe", ["int4-b32", "int8"])
def test_no_adapter_is_bit_identical_for_quantized_recipes_too(setup, tmp_path, recipe):
    """Prefill and one-token decode steps: the rank-0 slots add exact zeros after the quantized matmuls."""
    export(str(setup["base"]), tmp_path / "slots", recipe=recipe, adapters={"one": setup["one"]}, progress=False,
           validate=False)
    export(str(setup["base"]), tmp_path / "plain", recipe=recipe, progress=False, validate=False)
    slots, plain = edge_sdk.load(tmp_path / "slots"), edge_sdk.load(tmp_path / "plain")
    assert np.array_equal(slots.engine.forward(IDS, all_logits=True), plain.engine.forward(IDS, all_logits=True))
    for t in IDS[:8]:
        assert np.array_equal(slots.engine.forward([t]), plain.engine.forward([t]))


def test_a_manifest_that_hides_the_adapter_inputs_is_a_bundle_error(setup, tmp_path):
    import shutil

    from edge_sdk.exporters.bundle import write_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("format", "schema_version", "files", "lora")})
    with pytest.raises(BundleError, match="inputs the manifest does not describe.*lora"):
        edge_sdk.load(bundle)
