"""Issue 25 item 5 (more model ids), the tokenizer endpoints an evaluation harness reads, and issue 23's
/v1/embeddings (the openai client's embeddings.create against the Embedder's own vectors)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edge_sdk

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")


def _client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)


def test_the_folder_name_is_a_model_id_too(serve, tiny_bundle):
    server = serve(tiny_bundle)
    client = _client(server)
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == server.model_id and tiny_bundle.name in ids
    msgs = [{"role": "user", "content": "paris france capital"}]
    a = client.chat.completions.create(model=server.model_id, messages=msgs, max_tokens=8)
    b = client.chat.completions.create(model=tiny_bundle.name, messages=msgs, max_tokens=8)
    assert a.choices[0].message.content == b.choices[0].message.content and b.model == tiny_bundle.name


def test_names_from_the_manifest():
    """The catalog alias a bundle was exported from is a name; a path or a hub id, or a name with ':', is not."""
    from pathlib import Path
    from types import SimpleNamespace

    from edge_sdk.runtime.server.app import _aliases

    def model(folder, provenance):
        return SimpleNamespace(bundle_dir=Path("/x") / folder, manifest={"provenance": provenance})

    assert _aliases(model("smollm2", {"kind": "alias", "source": "smollm2-135m-instruct"}), "full-id") == [
        "smollm2", "smollm2-135m-instruct"]
    assert _aliases(model("b", {"kind": "gguf", "source": "/home/me/m.gguf"}), "full-id") == ["b"]
    assert _aliases(model("full-id", {"kind": "alias", "source": "full-id"}), "full-id") == []
    assert _aliases(model("a:b", {"kind": "alias", "source": "c:d"}), "full-id") == []


def test_the_real_bundle_answers_to_its_alias(serve, smollm2_bundle):
    pytest.importorskip("torch")
    server = serve(smollm2_bundle)
    ids = [m.id for m in _client(server).models.list().data]
    assert ids[:3] == [server.model_id, smollm2_bundle.name, "smollm2-135m-instruct"] or \
        ids[:2] == [server.model_id, "smollm2-135m-instruct"]
    r = _client(server).chat.completions.create(model="smollm2-135m-instruct", max_tokens=4,
                                                messages=[{"role": "user", "content": "Hi"}])
    assert r.choices[0].message.content


test_the_real_bundle_answers_to_its_alias = pytest.mark.e2e(test_the_real_bundle_answers_to_its_alias)


def test_the_tokenizer_endpoints(serve, tiny_bundle):
    model = edge_sdk.load(tiny_bundle, threads=1)
    server = serve(tiny_bundle)
    text = "hello <|endoftext|> world"
    code, out, _ = server.post("/tokenize", {"prompt": text, "add_special_tokens": False})
    assert code == 200, out
    out = json.loads(out)
    assert out["tokens"] == model.tokenizer.encode(text, parse_special=True) and out["count"] == len(out["tokens"])
    assert out["max_model_len"] == model.max_context
    code, back, _ = server.post("/detokenize", {"tokens": out["tokens"]})
    assert code == 200 and json.loads(back)["prompt"] == model.tokenizer.decode(out["tokens"])
    code, info, _ = server.get("/tokenizer_info")
    info = json.loads(info)
    assert info["eos_token"] == model.manifest["tokenizer"]["eos_token"] and info["model_max_length"] == model.max_context
    eos = json.loads(server.post("/tokenize", {"prompt": info["eos_token"], "add_special_tokens": False})[1])
    assert eos["tokens"] == [model.manifest["tokenizer"]["eos_token_ids"][0]]  # how a harness finds the eos id
    for path, body in (("/tokenize", {"prompt": 5}), ("/detokenize", {"tokens": [10**9]}),
                       ("/tokenize", {"prompt": "x" * 100_000})):
        assert server.post(path, body)[0] == 400


@pytest.fixture(scope="module")
def embedder(tiny_embedder_bundle):
    return edge_sdk.load(tiny_embedder_bundle, threads=1)


def test_embeddings_are_the_embedders_own(serve, tiny_bundle, tiny_embedder_bundle, embedder):
    server = serve(tiny_bundle, "--embedder", str(tiny_embedder_bundle))
    client = _client(server)
    names = [m.id for m in client.models.list().data]
    name = embedder.manifest["name"]
    assert name in names and names[0] == server.model_id
    texts = ["How do I reset the router?", "Hold the button for ten seconds.", "ünïcödé text", "x"]
    want = embedder.embed(texts)
    got = client.embeddings.create(model=name, input=texts)  # the client asks for base64 by default
    assert [d.index for d in got.data] == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.array([d.embedding for d in got.data], dtype=np.float32), want)
    floats = client.embeddings.create(model=name, input=texts, encoding_format="float")
    np.testing.assert_array_equal(np.array([d.embedding for d in floats.data], dtype=np.float32), want)
    one = client.embeddings.create(model=tiny_embedder_bundle.name, input="x")  # its folder name, one text
    np.testing.assert_array_equal(np.array(one.data[0].embedding, dtype=np.float32), want[3])
    assert got.usage.prompt_tokens == sum(len(embedder.token_ids(t)) for t in texts)
    import base64

    code, raw, _ = server.post("/v1/embeddings", {"model": name, "input": texts, "encoding_format": "base64"})
    vectors = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in json.loads(raw)["data"]]
    np.testing.assert_array_equal(np.stack(vectors), want)  # little-endian float32, as the client decodes it


def test_embeddings_match_sentence_transformers(serve, tiny_bundle, tiny_embedder_bundle, embedder):
    """A reference we did not write: sentence-transformers' encode of the source model the bundle was exported from
    (exporters.testing puts it next to the bundle), read back through the official client."""
    st = pytest.importorskip("sentence_transformers")
    server = serve(tiny_bundle, "--embedder", str(tiny_embedder_bundle))
    texts = ["Refunds are paid to the original card.", "le service client répond", "a", "tablet " * 40]
    got = _client(server).embeddings.create(model=embedder.manifest["name"], input=texts)
    ours = np.array([d.embedding for d in got.data], dtype=np.float64)
    src = tiny_embedder_bundle.parent / "tiny-embedder-src"
    theirs = st.SentenceTransformer(str(src), device="cpu").encode(texts)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)  # the fp32 export's tolerance (tests/exporters)


def test_embedding_requests_that_cannot_be_answered(serve, tiny_bundle, tiny_embedder_bundle, embedder):
    server = serve(tiny_bundle, "--embedder", str(tiny_embedder_bundle))
    name = embedder.manifest["name"]
    cases = [({"model": "nope", "input": "x"}, 404, "model"), ({"model": name, "input": [1, 2, 3]}, 400, "input"),
             ({"model": name, "input": ""}, 400, "input"), ({"model": name, "input": ["a"] * 2049}, 400, "input"),
             ({"model": name, "input": "x", "dimensions": 7}, 400, "dimensions"),
             ({"model": name, "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
             ({"model": name, "input": "word " * 200_000}, 400, "input")]
    for body, status, param in cases:
        code, text, _ = server.post("/v1/embeddings", body)
        assert code == status and json.loads(text)["error"]["param"] == param, (body, text)
    code, text, _ = server.post("/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": "hi"}]})
    assert code == 400 and "/v1/embeddings" in json.loads(text)["error"]["message"]
