"""Embedder bundles on tiny random BERTs: export, validation against sentence-transformers, the runtime's
Embedder, and the refusals. The real all-MiniLM-L6-v2 is in tests/e2e/test_minilm.py."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

st = pytest.importorskip("sentence_transformers")

import edge_sdk  # noqa: E402
from edge_sdk.errors import BundleError, UnsupportedModelError  # noqa: E402
from edge_sdk.exporters.export import export  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_embedder_dir  # noqa: E402
from edge_sdk.runtime.embed import Embedder  # noqa: E402

TEXTS = ["the quick brown fox", "hello world", "", "Ünïcödé café 中文 😀",
         " ".join(["paris france capital"] * 40)]  # the last one is longer than the model's 48 tokens


def _cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


@pytest.mark.parametrize("pooling,normalize", [("mean", True), ("cls", False), ("max", True)])
@pytest.mark.parametrize("recipe,bound", [("fp32", 0.9999), ("int8", 0.99)])
def test_export_matches_sentence_transformers(tmp_path, pooling, normalize, recipe, bound):
    src = make_tiny_embedder_dir(tmp_path / "src", pooling=pooling, normalize=normalize)
    manifest = export(str(src), tmp_path / "bundle", recipe=recipe, progress=False)
    assert manifest["kind"] == "embedder" and manifest["validation"]["passed"] is True
    assert manifest["embedding"] == {"pooling": pooling, "normalize": normalize, "max_tokens": 48, "dim": 64,
                                     "batch_size": 32}
    emb = edge_sdk.load(tmp_path / "bundle")
    assert isinstance(emb, Embedder)
    ours = emb.embed(TEXTS)
    theirs = st.SentenceTransformer(str(src), device="cpu").encode(TEXTS)
    assert ours.shape == (len(TEXTS), 64) and ours.dtype == np.float32
    assert _cosines(ours, theirs).min() >= bound
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    if recipe == "fp32":
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_batching_padding_and_order_do_not_change_vectors(tiny_embedder_bundle):
    emb = edge_sdk.load(tiny_embedder_bundle)
    together = emb.embed(TEXTS, batch_size=3)  # padded batches, sorted by length inside embed
    alone = np.concatenate([emb.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(emb.embed(TEXTS[::-1]), together[::-1], atol=1e-5)
    assert emb.embed([]).shape == (0, 64)


def test_long_text_is_truncated_as_sentence_transformers_does(tiny_embedder_bundle):
    emb = edge_sdk.load(tiny_embedder_bundle)
    long = TEXTS[-1]
    assert len(emb.token_ids(long)) == 48 and emb.max_tokens == 46
    assert emb.count_tokens(long) > 46  # count_tokens tells a chunker the text does not fit
    cut = emb.tokenizer.decode(emb.token_ids(long)[1:-1])
    np.testing.assert_allclose(emb.embed([long]), emb.embed([cut]), atol=1e-5)


def test_identity_names_the_model_not_the_folder(tiny_embedder_bundle, tmp_path):
    a = edge_sdk.load(tiny_embedder_bundle).identity
    copy = tmp_path / "copy"
    shutil.copytree(tiny_embedder_bundle, copy)
    assert edge_sdk.load(copy).identity == a and len(a["fingerprint"]) == 64
    other = tmp_path / "other"
    export(str(make_tiny_embedder_dir(tmp_path / "src2", seed=1)), other, progress=False)
    assert edge_sdk.load(other).identity["fingerprint"] != a["fingerprint"]


def test_embed_rejects_a_bare_string_and_non_text(tiny_embedder_bundle):
    emb = edge_sdk.load(tiny_embedder_bundle)
    with pytest.raises(TypeError, match="list of texts"):
        emb.embed("one text")
    with pytest.raises(TypeError, match="str"):
        emb.embed([b"bytes"])


def test_kind_is_checked_when_asked(tiny_embedder_bundle, tiny_bundle):
    with pytest.raises(BundleError, match="embedder bundle"):
        edge_sdk.load(tiny_embedder_bundle, kind="decoder")
    with pytest.raises(BundleError, match="not an embedder"):
        edge_sdk.load(tiny_bundle, kind="embedder")
    assert not isinstance(edge_sdk.load(tiny_bundle), Embedder)


def test_cli_run_on_an_embedder_is_a_clear_error(tiny_embedder_bundle, capsys):
    from edge_sdk.cli import main

    assert main(["run", str(tiny_embedder_bundle), "--prompt", "hi"]) != 0
    err = capsys.readouterr().err
    assert "embedder bundle" in err and "Traceback" not in err


@pytest.mark.parametrize("edit,field", [
    (lambda m: m["embedding"].update(pooling="median"), "embedding.pooling"),
    (lambda m: m["embedding"].update(max_tokens=10**6), "embedding.max_tokens"),
    (lambda m: m["embedding"].update(dim="384"), "embedding.dim"),
    (lambda m: m["tokenizer"].update(prefix_ids=[10**7]), "tokenizer.prefix_ids"),
    (lambda m: m["graph"].update(flavour="fused"), "graph.flavour"),
    (lambda m: m.pop("embedding"), "embedding"),
    (lambda m: m.update(kind="reranker"), "kind"),
])
def test_a_malformed_embedder_manifest_names_the_field(tiny_embedder_bundle, tmp_path, edit, field):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_embedder_bundle, bad)
    manifest = json.loads((bad / "edge_manifest.json").read_text())
    edit(manifest)
    (bad / "edge_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=field.split(".")[0]):
        edge_sdk.load(bad)


def test_unsupported_recipes_devices_and_options_are_refused_before_work(tmp_path):
    src = make_tiny_embedder_dir(tmp_path / "src")
    with pytest.raises(UnsupportedModelError, match="not available for embedders"):
        export(str(src), tmp_path / "a", recipe="int4-b32", progress=False)
    with pytest.raises(UnsupportedModelError, match="CPU"):
        export(str(src), tmp_path / "b", device="snapdragon-8-gen3", recipe="w8a16-qdq", progress=False)
    with pytest.raises(UnsupportedModelError, match="max-context"):
        export(str(src), tmp_path / "c", max_context=32, progress=False)
    assert not any((tmp_path / n).exists() for n in "abc")


def test_a_pipeline_with_a_dense_layer_is_refused(tmp_path):
    src = make_tiny_embedder_dir(tmp_path / "src")
    model = st.SentenceTransformer(str(src), device="cpu")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        dense = st.models.Dense(64, 32)
    st.SentenceTransformer(modules=[*model, dense], device="cpu").save(str(tmp_path / "dense"))
    with pytest.raises(UnsupportedModelError, match="Dense"):
        export(str(tmp_path / "dense"), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
