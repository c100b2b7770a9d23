"""benchmarks/anchors/build_ortgenai.py: Gemma 3's RoPE settings as transformers 5 stores them (nested by layer
type) are flattened into what onnxruntime-genai 0.18's Gemma 3 builder reads; other configs are left alone.
Fast: neither onnxruntime-genai nor transformers is needed."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_ortgenai", ROOT / "benchmarks" / "anchors" / "build_ortgenai.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_nested_gemma3_rope_is_flattened(build):
    cfg = SimpleNamespace(rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                           "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}})
    build.flatten_rope(cfg)
    assert cfg.rope_parameters == {"rope_type": "default", "rope_theta": 1000000.0}  # the builder's flat form
    assert cfg.rope_theta == 1000000.0  # global layers: not the builder's fallback 10000
    assert cfg.rope_local_base_freq == 10000.0  # sliding layers


def test_flat_rope_is_left_alone(build):
    flat = {"rope_type": "default", "rope_theta": 500000.0}
    cfg = SimpleNamespace(rope_parameters=dict(flat))
    build.flatten_rope(cfg)
    assert cfg.rope_parameters == flat and not hasattr(cfg, "rope_local_base_freq")
