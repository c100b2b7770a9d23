"""The architecture registry: every registered model_type has a fake() config and an export parity test."""
from __future__ import annotations

import pathlib

import pytest

from edge_sdk.errors import UnsupportedModelError
from edge_sdk.exporters.architectures import SUPPORTED, args_from_config, get_module

PARITY_TEST = pathlib.Path(__file__).with_name("test_export_parity.py")


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_every_architecture_has_a_fake_config(model_type):
    args = get_module(model_type).fake()
    assert args.model_type == model_type
    assert args.num_hidden_layers <= 4 and args.hidden_size <= 128  # tiny: tests must stay fast
    assert args.num_attention_heads % args.num_key_value_heads == 0


def test_every_architecture_is_covered_by_the_parity_test():
    from tests.exporters.test_export_parity import PARITY_ARCHITECTURES

    assert set(PARITY_ARCHITECTURES) == set(SUPPORTED), "add the new architecture to test_export_parity.py"


def test_unknown_model_type_lists_the_supported_ones():
    with pytest.raises(UnsupportedModelError) as e:
        args_from_config({"model_type": "gpt2", "vocab_size": 10})
    assert "gpt2" in str(e.value) and all(m in str(e.value) for m in SUPPORTED)


def test_config_without_model_type():
    with pytest.raises(UnsupportedModelError, match="model_type"):
        args_from_config({"vocab_size": 10})


def test_from_config_drops_unknown_keys_and_reads_transformers5_rope_parameters():
    cfg = {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "rope_parameters": {"rope_theta": 123.0, "rope_type": "default"}, "some_new_key": 1}
    args = args_from_config(cfg)
    assert args.rope_theta == 123.0 and args.head_dim == 16


@pytest.mark.parametrize("scaling,words", [
    ({"rope_type": "yarn", "factor": 4.0}, "not supported yet"),
    ({"rope_type": "dynamic", "factor": 4.0}, "not supported yet"),
    ({"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8}, "original_max_position_embeddings"),
    ({"rope_type": "longrope", "short_factor": [1.0] * 3, "long_factor": [2.0] * 8}, "short_factor must have"),
    ({"rope_type": "llama3", "factor": 8.0}, "lacks low_freq_factor"),
])
def test_unsupported_rope_scaling_is_refused_clearly(scaling, words):
    """Never exported with plain RoPE instead: that would be a model with wrong positions."""
    cfg = {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "rope_scaling": scaling}
    with pytest.raises(UnsupportedModelError, match=words):
        args_from_config(cfg)


def test_qwen2_always_has_qkv_bias():
    args = get_module("qwen2").fake()
    assert args.attention_bias
    assert "model.layers.0.self_attn.q_proj.bias" in args.expected_weights()


def test_longrope_past_the_pretraining_context_is_refused_before_loading(tmp_path):
    """transformers switches to the long factors past the original context; one table cannot follow, so a
    longer --max-context fails at once, naming the limit."""
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.testing import make_tiny_model_dir

    src = make_tiny_model_dir(tmp_path / "phi3", "phi3")
    with pytest.raises(UnsupportedModelError, match="--max-context 256 or less"):
        export(str(src), tmp_path / "out", max_context=512, progress=False)
    assert not (tmp_path / "out").exists()


def test_gemma3_reads_hidden_activation_not_a_silu_default():
    cfg = {"model_type": "gemma3_text", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
           "hidden_act": "silu", "hidden_activation": "gelu_pytorch_tanh", "sliding_window": 512,
           "rope_theta": 1e6, "rope_local_base_freq": 1e4, "query_pre_attn_scalar": 32, "sliding_window_pattern": 6}
    args = args_from_config(cfg)
    assert args.hidden_act == "gelu_pytorch_tanh" and args.norm_offset == 1.0 and args.sandwich_norms
    assert args.layer_types == ["sliding_attention"] * 5 + ["full_attention"]  # from the older pattern key
    assert args.rope_local_theta == 1e4 and abs(args.softmax_scale - 32 ** -0.5) < 1e-12
    assert abs(args.embed_scale - 8.0) < 1e-12
    with pytest.raises(UnsupportedModelError, match="final_logit_softcapping"):
        args_from_config({**cfg, "final_logit_softcapping": 30.0})


def test_gguf_architecture_names_map_to_model_types():
    assert get_module("gemma3").ModelArgs.model_type == "gemma3_text"
