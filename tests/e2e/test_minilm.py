"""The real all-MiniLM-L6-v2 through `edge-sdk export`: int8 (the embedder default) and fp32, checked
against sentence-transformers on texts and a retrieval set that export's own validation does not use."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.e2e
st = pytest.importorskip("sentence_transformers")

import edge_sdk  # noqa: E402

# Not the export validation's corpus (exporters/embedder/corpus.py): support-desk passages, with queries
# that share few words with their answer.
DOCS = [
    "Hold the power key for fifteen seconds to force the tablet to restart.",
    "The tablet charges fully in about three hours with the 20 W adapter.",
    "Screen brightness is set under Settings, then Display.",
    "Refunds are paid to the original card within ten working days.",
    "Orders over 50 euros ship free of charge within the country.",
    "Our support line is staffed from 9 am to 6 pm, Monday to Saturday.",
    "Passwords must be at least twelve characters and include a number.",
    "Two-factor sign-in sends a six-digit code to your phone.",
    "Delete your account under Privacy; your data is erased after 30 days.",
    "The warranty does not cover damage caused by water.",
    "Firmware updates install overnight while the device is charging.",
    "Le service client répond en français et en anglais.",
]
QUERIES = ["my tablet is frozen, how do I reboot it", "how long until my money comes back",
           "is shipping free", "what hours can I call you", "what makes a valid password",
           "I dropped it in the sink, is it covered", "when do updates happen"]
EXPECTED_FIRST = [0, 3, 4, 5, 6, 9, 10]


@pytest.fixture(scope="module")
def reference():
    from edge_sdk.exporters.sources import resolve

    return st.SentenceTransformer(str(resolve("all-minilm-l6-v2").model_dir), device="cpu")


def _check(bundle, reference, bound: float, exact_order: bool):
    emb = edge_sdk.load(bundle)
    assert emb.manifest["validation"]["passed"] is True and emb.dim == 384 and emb.max_tokens == 254
    ours, theirs = emb.embed(DOCS + QUERIES), reference.encode(DOCS + QUERIES)
    assert (ours * theirs).sum(1).min() >= bound  # both unit length: the dot product is the cosine
    d_ours, q_ours = ours[:len(DOCS)], ours[len(DOCS):]
    d_ref, q_ref = theirs[:len(DOCS)], theirs[len(DOCS):]
    top_ours = np.argsort(-(q_ours @ d_ours.T), axis=1)[:, :5]
    top_ref = np.argsort(-(q_ref @ d_ref.T), axis=1)[:, :5]
    assert top_ours[:, 0].tolist() == top_ref[:, 0].tolist() == EXPECTED_FIRST
    if exact_order:
        assert (top_ours == top_ref).all()
    return emb


def test_int8_default_export(minilm_bundle, reference):
    emb = _check(minilm_bundle, reference, 0.99, exact_order=False)
    assert emb.manifest["quantization"]["recipe"] == "int8"
    checks = {c["name"]: c["figures"] for c in emb.manifest["validation"]["checks"]}
    assert checks["embeddings"]["min_cosine"] >= 0.99 and checks["tokenizer_parity"]["mismatches"] == 0
    size = sum(f["bytes"] for f in emb.manifest["files"].values())
    assert size < 30e6  # the fp32 safetensors is 91 MB
    # MiniLM's tokenizer.json pads and cuts every text to 128 tokens; the bundle's does neither (the
    # Embedder truncates at max_tokens), whichever backend reads it.
    from edge_sdk.runtime.tokenizer import Tokenizer

    spec = json.loads((minilm_bundle / "tokenizer.json").read_text())
    assert spec["truncation"] is None and spec["padding"] is None
    for backend in ("pure", "fast"):
        assert Tokenizer.from_file(minilm_bundle / "tokenizer.json", backend=backend).encode("hello world") == [7592, 2088]


def test_fp32_export_matches_to_four_nines(tmp_path, reference, minilm_bundle):
    from edge_sdk.exporters.export import export

    export("all-minilm-l6-v2", tmp_path / "fp32", recipe="fp32", progress=False)
    _check(tmp_path / "fp32", reference, 0.9999, exact_order=True)
