"""LoRA on Phi-3, whose checkpoint fuses q/k/v (qkv_proj) and gate/up (gate_up_proj): PEFT adapters target
those fused modules. Merged (--adapter) and run-time (--adapters) bundles both match PEFT itself, and
`edge-sdk adapter add` places one without re-exporting."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import edge_sdk  # noqa: E402
from edge_sdk.exporters.export import export  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_lora, make_tiny_model_dir  # noqa: E402

from .test_adapters import IDS, _reference, peft_model  # noqa: E402

PHI3 = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("phi3-lora")
    base = make_tiny_model_dir(root / "tiny-phi3", "phi3")
    lora = make_tiny_lora(base, root / "lora", target_modules=PHI3)
    return root, base, lora


def test_merged_and_switchable_phi3_adapters_match_peft(setup, tmp_path):
    root, base, lora = setup
    ref = _reference(peft_model(base, lora), IDS)
    merged = export(str(base), tmp_path / "merged", recipe="fp32", adapter=str(lora), progress=False)
    assert merged["validation"]["passed"]
    assert merged["graph"]["max_context"] == 256  # the default context stops at longrope's pretraining context
    ours = edge_sdk.load(tmp_path / "merged").engine.forward(IDS, all_logits=True)
    assert np.abs(ours - ref).max() <= 1e-3
    switch = export(str(base), tmp_path / "switch", recipe="fp32", adapters={"a": str(lora)}, progress=False)
    assert switch["lora"]["adapters"]["a"]["validation"]["passed"]
    model = edge_sdk.load(tmp_path / "switch")
    model.adapter = "a"
    assert np.abs(model.engine.forward(IDS, all_logits=True) - ref).max() <= 1e-3
    from transformers import AutoModelForCausalLM

    plain = _reference(AutoModelForCausalLM.from_pretrained(base).eval(), IDS)
    assert np.abs(ref - plain).max() > 0.1  # the adapter changes the model: the checks above can fail


def test_adapter_add_places_a_fused_module_adapter(setup, tmp_path):
    from edge_sdk.exporters.adapters.add import add_adapter

    root, base, lora = setup
    bundle = tmp_path / "switch"
    export(str(base), bundle, recipe="fp32", adapters={"a": str(lora)}, progress=False, validate=False)
    add_adapter(bundle, "b", lora)
    model = edge_sdk.load(bundle)
    outs = {}
    for name in ("a", "b"):
        model.adapter = name
        model.decoder.reset()
        outs[name] = model.engine.forward(IDS, all_logits=True)
    assert np.array_equal(outs["a"], outs["b"])
