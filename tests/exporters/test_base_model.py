"""Base models (issue 25 item 9): a model whose tokenizer has no chat template exports and is validated on
plain-text prompts, and the API and `edge-sdk run` take a str prompt as plain text without a flag.

From a Hugging Face folder, and from a GGUF of the same model written as llama.cpp's converter writes one,
saying that prompts start with BOS (tokenizer.ggml.add_bos_token), as many base models' files do. The
reference is transformers (its tokenizer's ids, its greedy continuation) on the same folder or file."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("gguf")

from edge_sdk.exporters.export import export  # noqa: E402
from edge_sdk.exporters.references import hf_greedy  # noqa: E402

PROMPT = "the quick brown fox jumps over"


@pytest.fixture(scope="module", params=["folder", "gguf"])
def base(request, tiny_base_model_dir, tiny_base_bundle, tmp_path_factory):
    """(bundle, transformers model, transformers tokenizer) of the base model from a folder or a GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if request.param == "folder":
        kw, src, bundle = {}, tiny_base_model_dir, tiny_base_bundle
    else:
        from edge_sdk.exporters.gguf.write import write_model_gguf

        root = tmp_path_factory.mktemp("base-gguf")
        src = write_model_gguf(tiny_base_model_dir, root / "tiny-base.f32.gguf", lambda name, w: "F32", add_bos=True)
        bundle = root / "bundle"
        export(str(src), bundle, recipe="fp32", max_context=256, progress=False)
        kw, src = {"gguf_file": src.name}, src.parent
    return (bundle, AutoModelForCausalLM.from_pretrained(src, **kw).eval(), AutoTokenizer.from_pretrained(src, **kw),
            request.param)


def test_the_bundle_is_validated_on_plain_text(base):
    bundle, _, hf_tok, kind = base
    m = json.loads((bundle / "edge_manifest.json").read_text())
    assert hf_tok.chat_template is None and m["chat_template"] == {} and not (bundle / "chat_template.jinja").exists()
    checks = {c["name"]: c for c in m["validation"]["checks"]}
    assert m["validation"]["passed"] is True
    assert list(checks) == ["tokenizer_parity", "plain_prompt_ids", "logits", "greedy_tokens", "perplexity"]
    assert checks["plain_prompt_ids"]["passed"] and checks["plain_prompt_ids"]["figures"]["mismatches"] == 0
    greedy = checks["greedy_tokens"]["figures"]
    assert greedy["identical"] == greedy["prompts"] == 3  # fp32: token-identical to transformers
    # The GGUF asks for BOS before plain text; the folder's tokenizer adds nothing.
    assert m["tokenizer"]["add_bos"] is (kind == "gguf")


def test_the_api_continues_plain_text_as_transformers_does(base):
    import edge_sdk

    bundle, hf_model, hf_tok, kind = base
    model = edge_sdk.load(bundle, threads=1)
    ids = list(hf_tok(PROMPT)["input_ids"])
    assert model.encode_prompt(PROMPT) == ids == model.encode_prompt(PROMPT, raw=True)
    if kind == "gguf":
        assert ids[0] == hf_tok.bos_token_id
    # Random weights write byte tokens: a stream never ends in half a UTF-8 character, where a whole-text decode
    # shows the unfinished bytes as U+FFFD.
    want = hf_tok.decode(hf_greedy(hf_model, ids, 12, model.eos_token_ids), skip_special_tokens=True).rstrip("\ufffd")
    assert model.generate(PROMPT, max_new_tokens=12) == want
    assert "".join(model.stream(PROMPT, max_new_tokens=12)) == want
    with pytest.raises(ValueError, match="no chat template"):
        model.generate([{"role": "user", "content": PROMPT}], max_new_tokens=4)


def test_edge_sdk_run_takes_plain_text_without_a_flag(base, capsys):
    import edge_sdk
    from edge_sdk.cli import main

    bundle = base[0]
    want = edge_sdk.load(bundle, threads=1).generate(PROMPT, max_new_tokens=10)
    assert main(["run", str(bundle), "--prompt", PROMPT, "--max-new-tokens", "10", "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == want and out["new_tokens"] >= 1
    assert main(["run", str(bundle), "--prompt", PROMPT, "--system", "be brief"]) == 2
    assert "needs a chat template" in capsys.readouterr().err
    assert main(["chat", str(bundle)]) == 2  # a conversation needs a template's turns: say so, no traceback
    err = capsys.readouterr().err
    assert "no chat template" in err and "edge-sdk run" in err
