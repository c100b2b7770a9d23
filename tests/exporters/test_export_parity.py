"""Per-architecture export parity on tiny random models: graph logits == transformers (fp32)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.exporters.testing import random_hf_model  # noqa: E402
from edge_sdk.exporters.architectures import get_module  # noqa: E402

# The guard in test_architectures.py checks this covers every registered architecture.
PARITY_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3_text", "phi3")


# Llama 3.1/3.2's RoPE scaling on the tiny model: an "original" context of 32 puts the smooth band and the
# slowed frequencies inside the 24 positions tested.
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}


def _scaled_llama():
    from edge_sdk.exporters.architectures import args_from_config

    _, hf = random_hf_model("llama", rope_parameters=LLAMA3_ROPE)
    args = args_from_config({**hf.config.to_dict(), "model_type": "llama"})
    assert args.rope_type == "llama3"
    return args, hf


@pytest.mark.parametrize("model_type", [*PARITY_ARCHITECTURES, "llama+llama3-rope"])
def test_fused_graph_matches_transformers_in_both_kv_modes(model_type, tmp_path):
    """Prefill + decode through the shared-buffer cache, and chunked continuation prefill."""
    import onnx

    from edge_sdk.exporters.graph.decoder import emit_decoder
    from edge_sdk.runtime.engine import FusedEngine
    from edge_sdk.runtime.providers import SessionConfig

    args, hf = _scaled_llama() if model_type.endswith("llama3-rope") else random_hf_model(model_type)
    weights = {k: v.numpy() for k, v in hf.state_dict().items()}
    onnx.save(emit_decoder(args, weights, "fused", max_context=64), str(tmp_path / "model.onnx"))
    manifest = {"graph": {"files": {"decoder": "model.onnx"}, "max_context": 64,
                          "inputs": ["input_ids", "seqlens_k", "total_sequence_length", "num_logits_to_keep"]},
                "architecture": {"vocab_size": args.vocab_size},
                "kv_cache": {"num_layers": args.num_hidden_layers, "num_kv_heads": args.num_key_value_heads,
                             "head_dim": args.head_dim, "past": "past_key_values.{layer}.{kind}",
                             "present": "present.{layer}.{kind}"}}
    engine = FusedEngine(manifest, tmp_path, SessionConfig(threads=1))
    ids = np.random.RandomState(1).randint(0, args.vocab_size, 24).tolist()
    chunks, pos, ours = [9, 1, 1, 6, 1, 6], 0, []
    for c in chunks:  # a prompt, two decode steps, a second "turn", ...
        ours.append(engine.forward(ids[pos:pos + c], all_logits=True))
        pos += c
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(np.concatenate(ours), ref, atol=1e-4, rtol=0)
    # rewind + replay gives the same logits (stale cache entries are never read)
    engine.rewind(7)
    again = engine.forward(ids[17:24], all_logits=True)
    np.testing.assert_allclose(again, ref[17:24], atol=1e-4, rtol=0)


@pytest.mark.parametrize("model_type", PARITY_ARCHITECTURES)
def test_export_with_validation_writes_a_complete_bundle(model_type, tmp_path):

    from edge_sdk.exporters.testing import make_tiny_bundle
    from edge_sdk.runtime.bundle import read_manifest

    out = make_tiny_bundle(tmp_path / "b", model_type)
    m = read_manifest(out)  # verifies every sha256
    assert m["validation"]["passed"] is True
    checks = {c["name"]: c for c in m["validation"]["checks"]}
    assert set(checks) == {"tokenizer_parity", "chat_template_ids", "logits", "greedy_tokens", "perplexity"}
    assert abs(checks["perplexity"]["figures"]["ppl_increase"]) <= 1e-3
    assert checks["logits"]["figures"]["max_abs_diff"] <= 1e-3
    assert checks["greedy_tokens"]["figures"]["identical"] == 3
    assert m["architecture"]["model_type"] == model_type
    assert {"model.onnx", "model.onnx.data", "tokenizer.json", "chat_template.jinja"} <= set(m["files"])
    # The pure backend's compact tokenizer ships and is what validation's tokenizer-parity check ran through.
    assert m["tokenizer"]["compact_file"] in m["files"] and checks["tokenizer_parity"]["figures"]["backend"] == "pure"
    assert m["kv_cache"]["num_layers"] == get_module(model_type).fake().num_hidden_layers
    assert m["provenance"]["versions"]["onnxruntime"]
    assert not list(tmp_path.glob(".*partial*")), "staging folder left behind"
