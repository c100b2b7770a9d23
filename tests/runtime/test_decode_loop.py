"""The decode loop on a tiny random bundle, checked against transformers."""
from __future__ import annotations

import pytest

import edge_sdk
from edge_sdk.exporters.references import hf_greedy
from edge_sdk.errors import BundleError, ContextLengthError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def _ids_of(model, text):
    return model.tokenizer.encode(text)


def test_greedy_generate_equals_transformers(model, reference):
    hf, tok = reference
    msgs = [{"role": "user", "content": "the quick brown fox"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert model.encode_prompt(msgs) == ids
    text = model.generate(msgs, max_new_tokens=24, repetition_penalty=1.0)
    assert text == tok.decode(hf_greedy(hf, ids, 24), skip_special_tokens=True)
    assert model.last_stats.new_tokens > 0 and model.last_stats.stop_reason in ("eos", "length")


def test_default_sampling_equals_transformers_with_the_same_settings(model, reference):
    """No arguments: greedy with edge-sdk's repetition penalty (the tiny folder's generation_config.json sets no
    sampling field), as transformers' generate() does with that penalty."""
    hf, tok = reference
    defaults = model.generation_defaults
    assert defaults["temperature"] == 0.0 and defaults["repetition_penalty"] > 1.0
    msgs = [{"role": "user", "content": "the quick brown fox"}]
    ids = model.encode_prompt(msgs)
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), do_sample=False,
                          repetition_penalty=defaults["repetition_penalty"], max_new_tokens=24,
                          eos_token_id=model.eos_token_ids, pad_token_id=model.eos_token_ids[0])[0, len(ids):].tolist()
    # (a reply cut by max_new_tokens mid-character ends before it, where transformers' decode shows U+FFFD)
    assert model.generate(msgs, max_new_tokens=24) == tok.decode(out, skip_special_tokens=True).rstrip("\ufffd")


def test_stream_pieces_join_to_generate(model):
    pieces = list(model.stream("hello world", max_new_tokens=20))
    assert len(pieces) > 1
    assert "".join(pieces) == model.generate("hello world", max_new_tokens=20)


def test_chat_turn_two_equals_the_whole_conversation_from_scratch(model, tiny_bundle):
    chat = model.chat(system="be brief")
    first = chat.send("paris france capital", max_new_tokens=12)
    used_after_1, prompt_1 = chat.tokens_used, chat.last_stats.prompt_tokens
    second = chat.send("sea haiku", max_new_tokens=12)
    # turn 2 reused turn 1's prompt from the cache and ran the rest: the reply (decoded one token at a
    # time, so run again as part of a prompt) and the new message
    assert chat.last_stats.prefilled_tokens == chat.last_stats.prompt_tokens - prompt_1
    assert chat.last_stats.prompt_tokens > used_after_1 - 2
    fresh = edge_sdk.load(tiny_bundle, threads=1)
    history = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "paris france capital"},
               {"role": "assistant", "content": first}, {"role": "user", "content": "sea haiku"}]
    assert fresh.generate(history, max_new_tokens=12) == second
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]


def test_stopping_a_stream_keeps_the_partial_reply(model):
    chat = model.chat()
    stream = chat.stream("the quick brown fox", max_new_tokens=40)
    got = [next(stream), next(stream)]
    stream.close()
    assert chat.messages[-1] == {"role": "assistant", "content": "".join(got)}
    assert chat.last_stats.stop_reason == "cancelled"
    chat.send("again", max_new_tokens=4)  # the conversation goes on after a stop


def test_seeded_sampling_reproduces_and_seeds_differ(model):
    a = model.generate("hello", max_new_tokens=20, temperature=1.0, top_p=0.9, seed=1)
    b = model.generate("hello", max_new_tokens=20, temperature=1.0, top_p=0.9, seed=1)
    outs = {model.generate("hello", max_new_tokens=20, temperature=1.5, seed=s) for s in range(5)}
    assert a == b and len(outs) > 1


def test_stop_strings_cut_the_text(model):
    full = model.generate("hello world", max_new_tokens=30)
    words = full.split()
    assert len(words) >= 3, full
    stop = " " + words[2]
    cut = model.generate("hello world", max_new_tokens=30, stop=[stop])
    assert cut == full[: full.index(stop)]
    assert model.last_stats.stop_reason == "stop"


def test_max_new_tokens_and_invalid_arguments(model):
    assert model.generate("hi", max_new_tokens=0) == ""
    model.generate("hi", max_new_tokens=3)
    assert model.last_stats.new_tokens <= 3
    for bad in ({"temperature": -1}, {"top_p": 0}, {"top_k": -2}, {"min_p": 1.5}, {"repetition_penalty": 0},
                {"max_new_tokens": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            model.generate("hi", **bad)
    with pytest.raises(TypeError, match="unknown generation argument"):
        model.generate("hi", temprature=0.5)


def test_prompt_beyond_max_context_is_a_clear_error(model):
    long = "word " * (model.max_context + 10)
    with pytest.raises(ContextLengthError, match="maximum context"):
        model.generate(long, max_new_tokens=1)


def test_generation_stops_when_the_context_is_full(model):
    ids = model.encode_prompt("x")
    n = model.max_context - len(ids)
    list(model.stream_ids(ids, max_new_tokens=n + 50, temperature=1.0, seed=0))
    s = model.last_stats
    assert s.stop_reason in ("context", "eos") and len(model.decoder.tokens) <= model.max_context


def test_tampered_or_missing_files_are_refused(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "model.onnx.data", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="sha256"):
        edge_sdk.load(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        edge_sdk.load(copy)
    with pytest.raises(BundleError, match="does not exist"):
        edge_sdk.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no edge_manifest.json"):
        edge_sdk.load(tmp_path / "empty")


def test_repetition_penalty_changes_greedy_output_deterministically(model):
    a = model.generate("the the the", max_new_tokens=20, repetition_penalty=1.5)
    b = model.generate("the the the", max_new_tokens=20, repetition_penalty=1.5)
    assert a == b


def test_speculative_option_gives_the_greedy_text(model):
    prompt = "the quick brown fox the quick brown fox the quick brown fox"
    plain = model.generate(prompt, max_new_tokens=30)
    fast = model.generate(prompt, max_new_tokens=30, speculative=True)
    assert fast == plain
    assert model.last_stats.proposed >= model.last_stats.accepted >= 0
    with pytest.raises(ValueError, match="greedy"):
        model.generate(prompt, max_new_tokens=5, speculative=True, temperature=0.7)
