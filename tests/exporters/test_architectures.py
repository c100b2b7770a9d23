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
    ({"rope_type": "longrope", "factor": 4.0}, "not supported yet"),
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
