"""Fixtures for structured output: a small tokenizer with the tool-call markers of each format, the llguidance
tokenizer over it, and a random walk through a grammar (documents the grammar allows, without a model)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TEMPLATES = Path(__file__).parent / "templates"
# Added tokens of the families' tokenizers: Qwen's <tool_call> pair is not special, Phi-4-mini's markers are.
MARKERS = {"<tool_call>": False, "</tool_call>": False, "<|tool_call|>": True, "<|/tool_call|>": True,
           "<|tool|>": True, "<|/tool|>": True, "<|end|>": True, "<|system|>": True, "<|user|>": True,
           "<|assistant|>": True}


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tool_tokenizer_json(tmp_path_factory) -> Path:
    """tokenizer.json: the tiny test BPE (ChatML specials) plus the markers above, 512 ids at most."""
    pytest.importorskip("tokenizers")
    from tokenizers import AddedToken

    from edge_sdk.exporters.testing import make_tokenizer

    tok = make_tokenizer(480)
    for text, special in MARKERS.items():
        if special:
            tok.add_special_tokens([AddedToken(text, special=True, normalized=False)])
        else:
            tok.add_tokens([AddedToken(text, special=False, normalized=False)])
    path = tmp_path_factory.mktemp("tooltok") / "tokenizer.json"
    path.write_text(tok.to_str(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tool_tokenizer(tool_tokenizer_json):
    from edge_sdk.runtime.tokenizer import Tokenizer

    return Tokenizer.from_file(tool_tokenizer_json, backend="pure")


@pytest.fixture(scope="session")
def llg_tokenizer(tool_tokenizer_json):
    llg = pytest.importorskip("llguidance")
    return llg.LLTokenizer(tool_tokenizer_json.read_text(encoding="utf-8"), n_vocab=512, eos_token=[2])


class FakeModel:
    """What runtime/structured needs of a Model to compile a grammar, without a graph."""

    def __init__(self, tokenizer_json: Path, tokenizer, template_source: str | None = None):
        from edge_sdk.runtime.chat_template import ChatTemplate

        self.bundle_dir = tokenizer_json.parent
        self.manifest = {"tokenizer": {"file": tokenizer_json.name}, "architecture": {"vocab_size": 512},
                         "files": {tokenizer_json.name: {}}}
        self.tokenizer = tokenizer
        self.eos_token_ids = [2]
        self.template = ChatTemplate(template_source, bos_token="<|im_start|>", eos_token="<|im_end|>") \
            if template_source else None

    def encode_prompt(self, prompt, raw=False):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        return self.template.encode(messages, self.tokenizer, add_generation_prompt=True)


def walk(matcher, llg_tokenizer, rng: np.random.Generator, max_steps: int = 400, p_stop: float = 0.5,
         vocab: int = 512, eos: int = 2) -> tuple[str, bool]:
    """A random document of the grammar: each step a uniformly random allowed token (EOS with probability
    p_stop once the grammar accepts), forced tokens taken as the engine gives them.
    Returns (text, finished)."""
    from edge_sdk.runtime.structured.mask import Bitmask

    mask = Bitmask(vocab)
    tokens: list[int] = []
    for _ in range(max_steps):
        if matcher.is_stopped():
            return llg_tokenizer.decode_str(tokens), True
        mask.fill(matcher)
        assert not matcher.is_error(), matcher.get_error()
        allowed = np.flatnonzero(mask.allowed())
        text_ids = allowed[allowed != eos]
        if eos in allowed and (len(text_ids) == 0 or rng.random() < p_stop):
            assert matcher.is_accepting()
            return llg_tokenizer.decode_str(tokens), True
        assert len(text_ids), "the grammar allows nothing and does not accept"
        t = int(rng.choice(text_ids))
        assert matcher.consume_token(t), matcher.get_error()
        tokens.append(t)
        forced = matcher.compute_ff_tokens()
        if forced:
            assert matcher.consume_tokens(forced)
            tokens += forced
    return llg_tokenizer.decode_str(tokens), False


def matcher_for(lark: str, llg_tokenizer):
    from edge_sdk.runtime.structured import backend

    llg = backend.engine()
    return backend.new_matcher(llg_tokenizer, llg.LLMatcher.grammar_from_lark(lark))


def accepts(lark: str, llg_tokenizer, text: str) -> bool:
    """Whether the grammar accepts exactly `text` (tokenized by the engine's tokenizer, specials parsed)."""
    m = matcher_for(lark, llg_tokenizer)
    ids = llg_tokenizer.tokenize_str(text, parse_special=True)
    return m.consume_tokens(ids) and m.is_accepting()


def dumps(x) -> str:
    return json.dumps(x, ensure_ascii=False)


@pytest.fixture(scope="session")
def tiny_long_bundle(tmp_path_factory) -> Path:
    """The tiny random llama with a 1024-token context: the generic tool envelope's instructions take ~400 of
    the tiny tokenizer's tokens, more than the usual tiny bundle's 256."""
    import os

    if os.environ.get("EDGE_SDK_TEST_TINY_LONG_BUNDLE"):
        return Path(os.environ["EDGE_SDK_TEST_TINY_LONG_BUNDLE"])
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("tiny-long") / "bundle", "llama", max_context=1024)


@pytest.fixture(scope="session")
def tiny_static_bundle(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny llama exported for the NPU: the static flavour (fixed prefill window + 1-token decode graphs),
    fp32, run on the CPU (load it with device="x86-64-laptop")."""
    from edge_sdk.exporters.export import export

    out = tmp_path_factory.mktemp("tiny-static") / "bundle"
    export(str(tiny_model_dir), out, device="snapdragon-8-gen3", recipe="fp32", max_context=512, progress=False)
    return out
