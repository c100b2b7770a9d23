"""`edge-sdk serve` with a base model (no chat template): /v1/completions continues plain text as the Python
API does without a flag; /v1/chat/completions is a 400 that says the model has no chat template."""
from __future__ import annotations

import json

import edge_sdk


def test_completions_serve_plain_text_and_chat_is_a_clear_400(serve, tiny_base_bundle):
    server = serve(tiny_base_bundle)
    prompt = "the quick brown fox"
    code, text, _ = server.post("/v1/completions", {"model": server.model_id, "prompt": prompt, "max_tokens": 8})
    assert code == 200, text
    want = edge_sdk.load(tiny_base_bundle, threads=1).generate(prompt, max_new_tokens=8)
    assert json.loads(text)["choices"][0]["text"] == want
    code, text, _ = server.post("/v1/chat/completions", {"model": server.model_id, "max_tokens": 8,
                                                         "messages": [{"role": "user", "content": prompt}]})
    error = json.loads(text)["error"]
    assert code == 400 and "no chat template" in error["message"] and "/v1/completions" in error["message"]
    assert error["param"] == "messages" and error["type"] == "invalid_request_error"
