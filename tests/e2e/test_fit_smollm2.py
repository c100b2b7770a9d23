"""Fit before load on the real SmolLM2-135M bundle: refused when short, and the context the refusal suggests
loads and answers under the same memory."""
from __future__ import annotations

import re

import pytest

import edge_sdk
from edge_sdk.errors import DeviceFitError
from edge_sdk.runtime import fit
from edge_sdk.runtime.bundle import read_manifest
from edge_sdk.runtime.fit import MB, Available, memory_need

pytestmark = pytest.mark.e2e


def test_the_suggested_context_loads_where_the_full_one_was_refused(smollm2_bundle, monkeypatch):
    manifest = read_manifest(smollm2_bundle)
    need = memory_need(manifest)
    room = need.total - 10 * MB  # the 1024-token cache and its prefill pass do not fit; 768 tokens would
    monkeypatch.setattr(fit, "available_memory", lambda: Available(room, "MemAvailable"))
    with pytest.raises(DeviceFitError) as e:
        edge_sdk.load(smollm2_bundle)
    msg = str(e.value)
    assert f"needs about {need.total / MB:.0f} MB" in msg and "KV cache 45 MB at 1024 tokens (float)" in msg
    suggested = int(re.search(r"--max-context (\d+)", msg).group(1))
    assert suggested == 768 and memory_need(manifest, suggested).total <= room
    model = edge_sdk.load(smollm2_bundle, max_context=suggested)
    assert model.max_context == suggested and model.engine.cache.capacity == suggested
    full = edge_sdk.load(smollm2_bundle, force=True)  # forced: loads anyway
    prompt = "Write a haiku about the sea."
    assert model.generate(prompt, max_new_tokens=24) == full.generate(prompt, max_new_tokens=24) != ""
