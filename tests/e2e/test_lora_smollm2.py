"""LoRA on the real SmolLM2-135M: merged (--adapter) and switchable (--adapters) fp32 bundles against PEFT
itself - logits within 1e-3, the same greedy tokens - and one loaded model switching between two adapters and
back to the base, against the separately exported bundles.

The SmolLM2 weights are read from the GGUF (transformers dequantizing it, the slow part) once per module: the
exports and PEFT's references start from copies of that one load."""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytestmark = pytest.mark.e2e
torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

import edge_sdk  # noqa: E402
from edge_sdk.exporters.export import export  # noqa: E402

PROMPT = [{"role": "user", "content": "Write one sentence about the sea."}]


def _adapter(model, out, seed, **config):
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(**{"r": 8, "lora_alpha": 16, "init_lora_weights": False, **config})
    wrapped = peft.get_peft_model(model, cfg)
    with torch.no_grad():  # PEFT's random B is large for a real model; a trained adapter's update is small
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)
    wrapped.save_pretrained(out)
    wrapped.unload()  # the base model back, without LoRA layers
    return out


@pytest.fixture(scope="module")
def lora_setup(tmp_path_factory):
    from edge_sdk.exporters.sources import resolve

    root = tmp_path_factory.mktemp("lora-smollm2")
    src = resolve("smollm2-135m-instruct")
    pristine, tok = src.load_model(), src.load_tokenizer()[0]
    base = copy.deepcopy(pristine)  # the adapters are made on a copy: PEFT wraps and unwraps it
    a = _adapter(base, root / "a", 1, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                      "down_proj"])
    b = _adapter(base, root / "b", 2, r=4, use_rslora=True, target_modules=["q_proj", "v_proj"])
    switch, merged = root / "switch", root / "merged-a"
    # Each export loads "its" transformers model (the weights it emits and its validation reference): a fresh copy
    # of the one load above, which is what loading the same GGUF again returns.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(src), "load_model", lambda self: copy.deepcopy(pristine))
        manifest = export("smollm2-135m-instruct", switch, recipe="fp32", max_context=256, adapters={"a": a, "b": b},
                          progress=False)
        export("smollm2-135m-instruct", merged, recipe="fp32", max_context=256, adapter=a, progress=False,
               validate=False)
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return {"pristine": pristine, "a": a, "b": b, "switch": switch, "merged": merged,
            "manifest": manifest, "ids": ids}


def _peft_references(setup, ids):
    """PEFT's logits for adapter a, adapter b and the base (PEFT with its adapters disabled), and PEFT's model
    with "a" active: one PeftModel over a fresh copy of the base, holding both adapters."""
    model = peft.PeftModel.from_pretrained(copy.deepcopy(setup["pristine"]), str(setup["a"]), adapter_name="a").eval()
    model.load_adapter(str(setup["b"]), adapter_name="b")
    refs = {}
    with torch.no_grad():
        for name in ("a", "b"):
            model.set_adapter(name)
            refs[name] = model(torch.tensor([ids])).logits[0].numpy()
        with model.disable_adapter():
            refs[None] = model(torch.tensor([ids])).logits[0].numpy()
    model.set_adapter("a")
    return refs, model


def _ours(model, ids):
    model.decoder.reset()
    return model.engine.forward(ids, all_logits=True)


def test_switchable_and_merged_match_peft(lora_setup):
    s = lora_setup
    for name in ("a", "b"):
        v = s["manifest"]["lora"]["adapters"][name]["validation"]
        assert v["passed"], v
    model = edge_sdk.load(s["switch"])
    refs, peft_a = _peft_references(s, s["ids"])
    ref_a, ref_b = refs["a"], refs["b"]
    with torch.no_grad():  # the base without PEFT: the same logits PEFT gives with its adapters disabled
        ref_base = s["pristine"](torch.tensor([s["ids"]])).logits[0].numpy()
    assert np.abs(refs[None] - ref_base).max() <= 1e-5
    results = {}
    for name in ("a", "b", None, "a"):  # switch, switch, back to the base, and again
        model.adapter = name
        results.setdefault(name, []).append(_ours(model, s["ids"]))
    assert np.abs(results["a"][0] - ref_a).max() <= 1e-3 and np.array_equal(results["a"][0], results["a"][1])
    assert np.abs(results["b"][0] - ref_b).max() <= 1e-3
    assert np.abs(results[None][0] - ref_base).max() <= 1e-3
    assert np.abs(ref_a - ref_base).max() > 0.05  # the adapter really changes the model
    merged = _ours(edge_sdk.load(s["merged"]), s["ids"])
    assert np.abs(merged - ref_a).max() <= 1e-3 and np.abs(merged - results["a"][0]).max() <= 1e-3
    # Greedy: the switchable bundle with "a" generates PEFT's tokens.
    from edge_sdk.exporters.references import hf_greedy
    from edge_sdk.runtime.generate import generate_tokens
    from edge_sdk.runtime.sampling import make_sampler

    model.adapter = "a"
    model.decoder.reset()  # _ours ran the engine directly, past the decoder's token list
    ours = list(generate_tokens(model.decoder, s["ids"], max_new_tokens=24, sampler=make_sampler(0.0),
                                eos_ids=model.eos_token_ids))
    assert ours == hf_greedy(peft_a, s["ids"], 24, model.eos_token_ids)
