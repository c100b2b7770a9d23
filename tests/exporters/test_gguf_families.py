"""Every supported family from a GGUF written from a tiny random model (exporters/gguf/write.py, the layout
llama.cpp's converter writes): the fp32 export validates against transformers' model loaded from that GGUF,
the default recipe takes its Q8_0 matrices exactly, and `edge-sdk run` answers with the bundle."""
import subprocess
import sys

import pytest

pytest.importorskip("gguf")
pytest.importorskip("transformers")

from edge_sdk.exporters.architectures import SUPPORTED  # noqa: E402
from edge_sdk.exporters.gguf.write import write_model_gguf  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402

# transformers reads no head_dim from a qwen3 GGUF and takes Qwen3Config's default, 128 (as every released
# Qwen3 has): the fake's 32 would not load.
GGUF_OVERRIDES = {"qwen3": {"head_dim": 128}}


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_family_exports_from_its_gguf_and_runs(tmp_path, model_type):
    from edge_sdk.exporters.export import export

    src = make_tiny_model_dir(tmp_path / "hf", model_type, **GGUF_OVERRIDES.get(model_type, {}))
    (tmp_path / "gguf").mkdir()
    gguf_file = write_model_gguf(src, tmp_path / "gguf" / f"tiny-{model_type}.gguf", lambda name, w: "Q8_0")
    # fp32: the architecture as read from the GGUF, held to transformers' fp32 bounds (logits, greedy, ppl).
    fp32 = export(str(gguf_file), tmp_path / "fp32", recipe="fp32", max_context=128, progress=False)
    assert fp32["validation"]["passed"] and fp32["architecture"]["model_type"] == model_type
    # The CPU default: the file's Q8_0 blocks taken exactly. Not validated here: its int8 activations keep
    # too few of a random model's top-1 tokens (real weights are validated by the e2e tests and the
    # k-quant import tests).
    manifest = export(str(gguf_file), tmp_path / "bundle", max_context=128, progress=False, validate=False)
    tensors = manifest["quantization"]["gguf_import"]["tensors"]
    assert tensors and all(e["exact"] and e["type"] == "Q8_0" for e in tensors.values())
    out = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(tmp_path / "bundle"), "--prompt", "the quick brown",
                          "--max-new-tokens", "8"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "no reply"


def test_gemma3_chat_template_and_end_of_turn(tmp_path):
    """Gemma 3's chat template renders in the runtime as transformers renders it (the export's chat-ids check),
    and generation stops at <end_of_turn> as well as <eos>: a turn ends there, and a GGUF has no
    generation_config.json to say so."""
    from edge_sdk.exporters.export import export
    from edge_sdk.runtime.tokenizer import Tokenizer

    src = make_tiny_model_dir(tmp_path / "hf", "gemma3_text")
    manifest = export(str(src), tmp_path / "bundle", recipe="fp32", max_context=128, progress=False)
    checks = {c["name"]: c for c in manifest["validation"]["checks"]}
    assert checks["chat_template_ids"]["passed"]
    tok = Tokenizer.from_file(tmp_path / "bundle" / "tokenizer.json")
    assert manifest["tokenizer"]["eos_token_ids"] == sorted([tok.token_to_id("<eos>"), tok.token_to_id("<end_of_turn>")])


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_family_static_graph_from_its_gguf_matches_transformers(tmp_path, model_type):
    """The NPU flavour from the same GGUF: the architecture and weights as the exporter reads them from the file,
    the static fp32 graphs against transformers' model of that file (prefill chunk, then decode steps)."""
    import numpy as np
    import torch

    from edge_sdk.exporters.graph.static import export_static
    from edge_sdk.exporters.sources import resolve
    from edge_sdk.runtime.static_engine import StaticEngine

    src = make_tiny_model_dir(tmp_path / "hf", model_type, **GGUF_OVERRIDES.get(model_type, {}))
    (tmp_path / "gguf").mkdir()
    gguf_file = write_model_gguf(src, tmp_path / "gguf" / f"tiny-{model_type}.gguf", lambda name, w: "Q8_0")
    source = resolve(str(gguf_file))
    hf = source.load_model()
    weights = source.args.prepare_weights({k: v.numpy() for k, v in hf.state_dict().items()})
    fragment = export_static(source.args, weights, tmp_path / "static", 8, 32)
    engine = StaticEngine(fragment, tmp_path / "static")
    ids = np.random.RandomState(0).randint(0, source.args.vocab_size, 14).tolist()
    ours = np.concatenate([engine.forward(ids[:10], all_logits=True)] + [engine.forward([t])[None] for t in ids[10:]])
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)
