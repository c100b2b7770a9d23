"""Log-probabilities (issue 25 item 8) in OpenAI's shapes, read with the official openai client, and checked against
a log-softmax computed by torch from the Python API's own logits on the same bundle: the generated tokens' from the
logits the model decoded them with, the prompt's (completions' echo) from one prefill of the whole prompt."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edge_sdk

from ..runtime.test_penalties import Recorder  # sees the model's own logits at every step

torch = pytest.importorskip("torch")
openai = pytest.importorskip("openai")
pytest.importorskip("starlette")

ATOL = 1e-5


@pytest.fixture(scope="module")
def reference(tiny_bundle):
    return edge_sdk.load(tiny_bundle, threads=1)


def _ref_log_softmax(logits) -> np.ndarray:
    return torch.log_softmax(torch.tensor(np.asarray(logits, dtype=np.float64)), dim=-1).numpy()


def _generated(model, ids, n, **kw):
    """(text, [(token, log_softmax row)]) of the Python API's own generation."""
    rec = Recorder()
    text = "".join(model.stream_ids(ids, confidence=rec, max_new_tokens=n, **kw))
    hidden = set(model.eos_token_ids) | set(model.tokenizer.special_ids)  # no text: not in the reply's logprobs
    return text, [(t, _ref_log_softmax(lg)) for lg, t in rec.steps if t not in hidden]


def _prompt_rows(model, ids) -> np.ndarray:
    """log_softmax of the Python API's logits for the whole prompt in one pass: row i predicts token i + 1."""
    model.decoder.reset()
    logits = model.decoder.forward(list(ids), all_logits=True)
    model.decoder.reset()
    return _ref_log_softmax(logits)


def _bytes(model, token: int) -> bytes:
    """A token's bytes; none for an id the tiny random model's output layer has beyond its tokenizer's vocabulary."""
    return model.tokenizer.token_bytes(token) if token < model.tokenizer.vocab_size else b""


def _client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)


def test_chat_logprobs_are_the_models_own(serve, tiny_bundle, reference):
    server = serve(tiny_bundle)
    msgs = [{"role": "user", "content": "paris france capital"}]
    text, steps = _generated(reference, reference.encode_prompt(msgs), 12)
    resp = _client(server).chat.completions.create(model=server.model_id, messages=msgs, max_tokens=12, logprobs=True,
                                                   top_logprobs=3)
    choice = resp.choices[0]
    assert choice.message.content == text
    content = choice.logprobs.content
    assert len(content) == len(steps) and len(steps) >= 10
    # the tokens spell the reply (a random model's bytes need not be UTF-8: shown as U+FFFD, as the reply shows them)
    assert b"".join(bytes(e.bytes) for e in content).decode("utf-8", "replace").startswith(text)
    for entry, (token, row) in zip(content, steps):
        assert entry.logprob == pytest.approx(row[token], abs=ATOL)
        assert entry.token == _bytes(reference, token).decode("utf-8", "replace")
        top = np.argsort(-row, kind="stable")[:3]
        assert [e.logprob for e in entry.top_logprobs] == pytest.approx(row[top].tolist(), abs=ATOL)
        assert [bytes(e.bytes) for e in entry.top_logprobs] == [_bytes(reference, int(t)) for t in top]
    # without top_logprobs: the chosen tokens only; without logprobs: none
    plain = _client(server).chat.completions.create(model=server.model_id, messages=msgs, max_tokens=12, logprobs=True)
    assert [e.logprob for e in plain.choices[0].logprobs.content] == [e.logprob for e in content]
    assert all(e.top_logprobs == [] for e in plain.choices[0].logprobs.content)
    none = _client(server).chat.completions.create(model=server.model_id, messages=msgs, max_tokens=12)
    assert none.choices[0].logprobs is None


def test_streamed_chat_logprobs_cover_the_reply_once(serve, tiny_bundle, reference):
    server = serve(tiny_bundle)
    msgs = [{"role": "user", "content": "sea haiku"}]
    text, steps = _generated(reference, reference.encode_prompt(msgs), 20)
    chunks = list(_client(server).chat.completions.create(model=server.model_id, messages=msgs, max_tokens=20,
                                                          logprobs=True, top_logprobs=1, stream=True))
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [e.logprob for e in entries] == pytest.approx([row[t] for t, row in steps], abs=ATOL)


def test_sampled_tokens_get_the_models_logprobs_not_the_tempered_ones(serve, tiny_bundle, reference):
    """Temperature and penalties change which token is drawn, not the model's probabilities reported for it."""
    server = serve(tiny_bundle)
    msgs = [{"role": "user", "content": "hello world"}]
    kw = {"temperature": 1.5, "seed": 3, "frequency_penalty": 1.0}
    text, steps = _generated(reference, reference.encode_prompt(msgs), 10, **kw)
    resp = _client(server).chat.completions.create(model=server.model_id, messages=msgs, max_tokens=10,
                                                   logprobs=True, **kw)
    assert resp.choices[0].message.content == text
    assert [e.logprob for e in resp.choices[0].logprobs.content] == pytest.approx([r[t] for t, r in steps], abs=ATOL)


@pytest.mark.parametrize("as_ids", [False, True])
def test_completions_echo_scores_the_prompt(serve, tiny_bundle, reference, as_ids):
    """What lm-evaluation-harness's loglikelihood asks: logprobs=1, echo=true, max_tokens=1, temperature 0."""
    server = serve(tiny_bundle)
    prompt = "the quick brown fox jumps over the lazy dog"
    ids = reference.encode_prompt(prompt, raw=True)
    rows = _prompt_rows(reference, ids)
    text, steps = _generated(reference, ids, 1)
    resp = _client(server).completions.create(model=server.model_id, prompt=ids if as_ids else prompt, max_tokens=1,
                                              logprobs=1, echo=True, temperature=0)
    choice = resp.choices[0]
    lp = choice.logprobs
    assert choice.text == reference.tokenizer.decode(ids) + text if as_ids else choice.text == prompt + text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(ids) + 1
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    want = [rows[i - 1, ids[i]] for i in range(1, len(ids))]
    assert lp.token_logprobs[1:len(ids)] == pytest.approx(want, abs=ATOL)
    token, row = steps[0]
    assert lp.token_logprobs[-1] == pytest.approx(row[token], abs=ATOL)
    for i in range(1, len(ids)):  # top_logprobs: the most likely token, and the prompt's own
        best = int(np.argmax(rows[i - 1]))
        top = lp.top_logprobs[i]
        text_of = lambda t: _bytes(reference, t).decode("utf-8", "replace")  # noqa: E731
        assert top[text_of(best)] == pytest.approx(rows[i - 1, best], abs=ATOL)
        assert top[text_of(ids[i])] == pytest.approx(rows[i - 1, ids[i]], abs=ATOL) and len(top) <= 2
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)


def test_scoring_does_not_change_the_answer(serve, tiny_bundle, reference):
    """The prompt is scored in passes that leave the cache as a prefill would: the answer after it is the same."""
    server = serve(tiny_bundle)
    client = _client(server)
    prompt = "one two three four five six seven eight nine ten " * 6
    plain = client.completions.create(model=server.model_id, prompt=prompt, max_tokens=16)
    scored = client.completions.create(model=server.model_id, prompt=prompt, max_tokens=16, logprobs=3, echo=True)
    assert scored.choices[0].text == prompt + plain.choices[0].text
    assert plain.choices[0].text == reference.generate(prompt, raw=True, max_new_tokens=16)
    only = client.completions.create(model=server.model_id, prompt=prompt, max_tokens=0, logprobs=0, echo=True)
    assert only.choices[0].text == prompt and only.usage.completion_tokens == 0
    assert only.choices[0].logprobs.token_logprobs == scored.choices[0].logprobs.token_logprobs[:len(
        only.choices[0].logprobs.token_logprobs)]


def test_lm_eval_reads_the_answer(serve, tiny_bundle, reference):
    """lm-evaluation-harness's own parser (when it is installed) turns the answer into (loglikelihood, is_greedy)."""
    lm_eval = pytest.importorskip("lm_eval.models.openai_completions")
    server = serve(tiny_bundle)
    ctx, cont = reference.encode_prompt("the quick brown", raw=True), reference.encode_prompt(" fox jumps", raw=True)
    body = {"model": server.model_id, "prompt": [ctx + cont], "temperature": 0, "max_tokens": 1, "logprobs": 1,
            "seed": 1234, "echo": True}
    code, text, _ = server.post("/v1/completions", body)
    assert code == 200, text
    [(ll, greedy)] = lm_eval.LocalCompletionsAPI.parse_logprobs(json.loads(text), tokens=[ctx + cont],
                                                                ctxlens=[len(ctx)])
    rows = _prompt_rows(reference, ctx + cont)
    want = sum(rows[len(ctx) + j - 1, t] for j, t in enumerate(cont))
    assert ll == pytest.approx(want, abs=1e-4)
    assert greedy == all(int(np.argmax(rows[len(ctx) + j - 1])) == t for j, t in enumerate(cont))


def test_a_token_cut_by_a_stop_string_is_in_the_stream_as_in_the_answer(serve, tiny_bundle, reference):
    """A stop string that begins inside a token: the reply ends mid-token, and that token (its text partly shown) is
    the reply's last entry, in the last chunk of a stream as in a whole answer."""
    server = serve(tiny_bundle)
    msgs = [{"role": "user", "content": "paris france capital"}]
    text, steps = _generated(reference, reference.encode_prompt(msgs), 24)
    pieces = [_bytes(reference, t) for t, _ in steps]
    cut = None
    for k in range(1, len(pieces) - 1):
        before = b"".join(pieces[:k]).decode("utf-8", "replace")  # random bytes show as U+FFFD, in the reply too
        pos = len(before) + 1  # one character into token k
        if (text.startswith(before) and len(pieces[k]) >= 2 and pieces[k].isascii() and pos + 3 <= len(text)
                and text.find(text[pos:pos + 3]) == pos):
            cut = (k, text[pos:pos + 3])
            break
    assert cut is not None, "no token in the reply to cut inside"
    k, stop = cut
    client = _client(server)
    whole = client.chat.completions.create(model=server.model_id, messages=msgs, max_tokens=24, logprobs=True,
                                           stop=[stop])
    chunks = list(client.chat.completions.create(model=server.model_id, messages=msgs, max_tokens=24, logprobs=True,
                                                 stop=[stop], stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert whole.choices[0].message.content == text[:text.find(stop)]
    want = [row[t] for t, row in steps[:k + 1]]  # tokens 0..k: token k is cut by the stop string
    assert [e.logprob for e in whole.choices[0].logprobs.content] == pytest.approx(want, abs=ATOL)
    assert [e.logprob for e in streamed] == pytest.approx(want, abs=ATOL)
