"""Log-probabilities of the real SmolLM2 through `edge-sdk serve`, against transformers (a reference we did not
write): the echo of a prompt scored by the fp32 bundle equals transformers' log-softmax of its own logits on the same
token ids, to the export's logit tolerance."""
from __future__ import annotations

import numpy as np
import pytest

import edge_sdk

pytestmark = pytest.mark.e2e
torch = pytest.importorskip("torch")
openai = pytest.importorskip("openai")

TEXT = "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid."


def test_echo_logprobs_match_transformers(serve, smollm2_fp32_bundle, smollm2_reference):
    hf_model, _ = smollm2_reference
    server = serve(smollm2_fp32_bundle)
    ids = edge_sdk.load(smollm2_fp32_bundle, threads=1).encode_prompt(TEXT, raw=True)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)
    got = client.completions.create(model=server.model_id, prompt=ids, max_tokens=0, logprobs=5, echo=True)
    lp = got.choices[0].logprobs
    with torch.no_grad():
        logits = hf_model(torch.tensor([ids])).logits[0].double()
    want = torch.log_softmax(logits, dim=-1).numpy()
    ours = np.array(lp.token_logprobs[1:], dtype=np.float64)
    theirs = np.array([want[i - 1, ids[i]] for i in range(1, len(ids))])
    assert len(ours) == len(ids) - 1 and np.abs(ours - theirs).max() < 2e-3, np.abs(ours - theirs).max()
    # the alternatives too: the five most likely tokens at each position, as transformers ranks them
    for i in range(1, len(ids)):
        top = sorted(lp.top_logprobs[i].values(), reverse=True)[:5]
        assert np.allclose(top, np.sort(want[i - 1])[::-1][:5], atol=2e-3)
    # "Paris" after "The capital of France is" is the likeliest token: what a multiple-choice harness reads
    assert sum(lp.token_logprobs[1:]) == pytest.approx(float(theirs.sum()), abs=0.05)


def test_chat_logprobs_of_the_default_bundle(serve, smollm2_bundle):
    server = serve(smollm2_bundle)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)
    r = client.chat.completions.create(model=server.model_id, max_tokens=16, logprobs=True, top_logprobs=2,
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    content = r.choices[0].logprobs.content
    assert "".join(e.token for e in content) == r.choices[0].message.content  # real text: the tokens spell it
    assert all(e.logprob <= 0 and e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob for e in content)
    assert all(e.logprob == e.top_logprobs[0].logprob for e in content)  # greedy: each token is the likeliest
