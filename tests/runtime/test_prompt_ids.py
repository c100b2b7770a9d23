"""A chat turn tokenizes its new text once: the ids a session keeps equal the full encode, on many
conversations, templates and tokenizers, through send, fits, add_exchange and revise_reply."""
from __future__ import annotations

import random

import pytest

from edge_sdk.runtime.chat_template import ChatTemplate
from edge_sdk.runtime.prompt_ids import PromptIds

from ..unit.test_chat_template import LLAMA2, QWEN25, SMOLLM2, TRICKY_CONTENTS, ZEPHYR, Adapter, qwen_like, smollm2_like

pytest.importorskip("tokenizers")

WORDS = ["paris", "the sea", "café ☕", "1234", "<|im_end|>", "<|im_start|>system\nobey", "</s><s>[INST]", "\n\n",
         "  spaced  ", "tabs\t\t", "ok."]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(TRICKY_CONTENTS + ["x"])
    return "".join(rng.choice(WORDS) + rng.choice(["", " ", "\n"]) for _ in range(rng.randint(1, 6)))


class Counting:
    """A tokenizer that counts the characters it is asked to encode."""

    def __init__(self, inner):
        self.inner, self.chars = inner, 0

    def encode(self, text, *, parse_special=False):
        self.chars += len(text)
        return self.inner.encode(text, parse_special=parse_special)


@pytest.mark.parametrize("make_tokenizer", [smollm2_like, qwen_like], ids=["smollm2", "qwen"])
@pytest.mark.parametrize("template", [SMOLLM2, QWEN25, ZEPHYR, LLAMA2], ids=["smollm2", "qwen2.5", "zephyr", "llama2"])
def test_incremental_ids_equal_the_full_encode(make_tokenizer, template):
    tok = Adapter(make_tokenizer())
    chat = ChatTemplate(template, bos_token="<s>", eos_token="</s>")
    rng = random.Random(hash(template) % 1000)
    for _ in range(40):  # conversations
        ids = PromptIds(chat, tok)
        messages = [{"role": "system", "content": _text(rng)}] if template != LLAMA2 and rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 6)):  # turns: what a ChatSession does, in its order
            user = _text(rng)
            candidate = [*messages, {"role": "user", "content": user}]
            assert ids(candidate) == chat.encode(candidate, tok)  # fits()
            assert ids(candidate) == chat.encode(candidate, tok)  # the turn itself
            messages = [*candidate, {"role": "assistant", "content": _text(rng)}]
            if rng.random() < 0.3:  # the router's fallback answered instead: revise_reply
                messages[-1] = {"role": "assistant", "content": _text(rng)}
            assert ids(messages) == chat.encode(messages, tok)  # add_exchange / revise_reply count tokens
            if rng.random() < 0.5:  # settle(): the next prompt's known part, up to the next message
                marker = "\ue000next\ue001"
                full = chat.encode([*messages, {"role": "user", "content": marker}], tok)
                prefix = ids.prefix([*messages, {"role": "user", "content": marker}], marker)
                assert full[:len(prefix)] == prefix
                rest = chat.encode([*messages, {"role": "user", "content": "anything"}], tok)
                assert rest[:len(prefix)] == prefix  # whatever the user types next


def test_a_turn_tokenizes_its_new_text_once():
    tok = Counting(Adapter(smollm2_like()))
    chat = ChatTemplate(SMOLLM2)
    ids = PromptIds(chat, tok)
    messages: list[dict] = []
    history_chars = []
    for turn in range(12):
        user, reply = f"question number {turn} " * 20, f"an answer {turn} " * 30
        tok.chars = 0
        candidate = [*messages, {"role": "user", "content": user}]
        ids(candidate)
        ids(candidate)
        messages = [*candidate, {"role": "assistant", "content": reply}]
        ids(messages)
        history_chars.append(sum(len(m["content"]) for m in messages))
        # the new message and the previous reply, each once, plus the template's short pieces and roles
        # (the first two turns also find where the template parts' special tokens are, once per part)
        assert turn < 2 or tok.chars < len(user) + len(reply) + 100, (turn, tok.chars)
    assert history_chars[-1] > 10 * (len(user) + len(reply)) / 2  # the whole conversation was far longer


# --- the session on a real (tiny) bundle -----------------------------------------------------------

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model(tiny_bundle):
    import edge_sdk

    return edge_sdk.load(tiny_bundle, threads=1)


def test_session_ids_equal_the_full_encode_through_every_path(model):
    rng = random.Random(7)
    for _ in range(6):
        chat = model.chat(system=_text(rng) if rng.random() < 0.5 else None)
        for _ in range(rng.randint(2, 5)):
            user = _text(rng) or "x"  # a session refuses an empty message
            assert chat._next_ids(user) == model.encode_prompt([*chat.messages, {"role": "user", "content": user}])
            op = rng.choice(["send", "send", "exchange", "revise"])
            if op == "revise" and chat.messages and chat.messages[-1]["role"] == "assistant":
                chat.revise_reply(_text(rng))
            elif op == "exchange":
                chat.add_exchange(user, _text(rng))
            else:
                chat.fits(user)
                chat.send(user, max_new_tokens=rng.randint(1, 6))
                assert chat.tokens_used == len(model.decoder.tokens)
                continue
            assert chat.tokens_used == len(model.encode_prompt(chat.messages))


def test_settle_runs_the_reply_now_and_the_answer_does_not_change(model, tiny_bundle):
    import edge_sdk

    plain = edge_sdk.load(tiny_bundle, threads=1).chat(system="be brief")
    settled = model.chat(system="be brief")
    known = 0
    for turn, text in enumerate(("paris france capital", "sea haiku", "and the sky", "one more")):
        want = plain.send(text, max_new_tokens=8)
        assert settled.send(text, max_new_tokens=8) == want  # the same conversation, the same answer
        stats = settled.last_stats
        if turn:  # after settle() a turn runs only what follows the previous reply's turn
            assert stats.prefilled_tokens == stats.prompt_tokens - known
            assert plain.last_stats.prefilled_tokens > stats.prefilled_tokens  # the plain one re-ran the reply
        ran = settled.settle()
        assert ran > 0 and settled.settle() == 0  # a second call has nothing left to do
        marker = "\ue000"
        known = len(settled._prompt_ids.prefix([*settled.messages, {"role": "user", "content": marker}], marker))
        assert model.decoder.clean >= known


class CountingProxy(Counting):
    """Counting, and everything else of the real tokenizer (the detokenizer reads its decoder)."""

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_session_turn_tokenizes_only_its_new_text(model):
    """The session's own path (fits, then the turn; add_exchange): the characters tokenized per turn stay the
    same as the conversation grows (re-encoding it would grow with it, two or three times per turn)."""
    real = model.tokenizer
    model.tokenizer = counting = CountingProxy(real)
    try:
        chat = model.chat(system="be brief")
        per_turn, history = [], []
        for turn in range(6):
            counting.chars = 0
            user = f"sea {turn}"
            assert chat.fits(user)
            chat.send(user, max_new_tokens=3)
            if turn % 2:
                chat.add_exchange(f"sky {turn}", f"blue {turn}")
            per_turn.append(counting.chars)
            history.append(sum(len(m["content"]) for m in chat.messages))
        # Turns 2 and 4 alike, 3 and 5 alike (an exchange more); the first turns also probe the template's
        # parts for special tokens, once.
        for a, b in ((2, 4), (3, 5)):
            assert abs(per_turn[a] - per_turn[b]) < 30, (per_turn, history)
        assert history[-1] - history[2] > 40, history  # while the conversation grew
    finally:
        model.tokenizer = real
