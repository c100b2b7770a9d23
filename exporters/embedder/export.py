"""Exporting a sentence-transformers encoder to an embedder bundle (manifest kind "embedder").

    edge-sdk export all-minilm-l6-v2 --output bundles/minilm            # int8, validated
    edge-sdk export ./my-st-model --output bundles/emb --recipe fp32

The reference is the model as sentence-transformers loads it: its weights are what we emit, and its
`encode` is what validation compares against. Written through the same staging folder and manifest
writer as decoder bundles, so a failed export leaves nothing behind.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk import install_hint
from edge_sdk.errors import SourceError, UnsupportedModelError

from ..bundle import save_onnx, staging, write_manifest
from ..progress import Progress
from ..recipes import get_recipe
from .graph import INPUTS, OUTPUTS, emit_encoder, recipe_options
from .st_config import sentence_config

DEFAULT_RECIPE = "int8"  # measured: cosine >= 0.999 to fp32 sentence-transformers at a quarter of the size
# int4-b32 (Q4_1 blocks) was measured on all-MiniLM-L6-v2: cosine to sentence-transformers min 0.938, median
# 0.974, below the 0.99 bound; it is not offered.
RECIPES = ("fp32", "int8")


def _load_reference(folder: Path):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise SourceError(f"exporting an embedder needs sentence-transformers (the reference it is validated "
                          f"against): {install_hint('export')}") from e
    try:
        return SentenceTransformer(str(folder), device="cpu")
    except Exception as e:  # many exception types; the user needs one line
        raise SourceError(f"sentence-transformers could not load {folder}: {e}") from e


def _special_ids(tokenizer_json: str) -> tuple[list[int], list[int]]:
    """The ids the model's post-processor puts around one sentence ([CLS] and [SEP] for BERT)."""
    from edge_sdk.runtime.tokenizer import Tokenizer

    tok = Tokenizer.from_json(tokenizer_json, backend="pure")
    marker = "edge sdk marker"
    inner = tok.encode(marker)
    full = tok.encode(marker, add_special_tokens=True)
    at = next((i for i in range(len(full) - len(inner) + 1) if full[i:i + len(inner)] == inner), None)
    if at is None:
        raise UnsupportedModelError("the tokenizer's post-processor changes the text's own tokens; not supported")
    return full[:at], full[at + len(inner):]


def export_embedder(src, output: Path, *, profile, recipe: str | None, force: bool, validate: bool,
                    progress: Progress, versions: dict[str, str], max_context: int | None = None,
                    adapters: bool = False) -> dict[str, Any]:
    """Export the encoder `src` (resolved by exporters/sources.py) to an embedder bundle at `output`."""
    if adapters:
        raise UnsupportedModelError("adapters apply to language models, not to embedders")
    if max_context is not None:
        raise UnsupportedModelError("--max-context applies to decoders; an embedder's input length comes from "
                                    "its sentence-transformers config")
    if profile.flavour != "fused":
        raise UnsupportedModelError(f"device {profile.name!r} runs {profile.flavour} graphs (an NPU); embedders are "
                                    "exported for CPU devices only - choose a CPU profile (edge-sdk devices)")
    rec = get_recipe(recipe or DEFAULT_RECIPE)
    if rec.name not in RECIPES:
        raise UnsupportedModelError(f"recipe {rec.name!r} is not available for embedders; use one of {', '.join(RECIPES)}")
    args = src.args
    progress.stage("loading the model with sentence-transformers (the reference)")
    reference = _load_reference(src.model_dir)
    st = sentence_config(reference, args.max_position_embeddings)
    progress.note(f"{args.model_type} encoder: {args.num_hidden_layers} layers, hidden {args.hidden_size}, "
                  f"{args.parameter_count() / 1e6:.1f} M parameters; {st.pooling} pooling, "
                  f"{'normalised' if st.normalize else 'not normalised'}, inputs up to {st.max_tokens} tokens; recipe {rec.name}")
    weights = {k: v.detach().float().numpy() for k, v in reference[0].auto_model.state_dict().items()}
    missing = [n for n in args.expected_weights() if n not in weights]
    if missing:
        raise UnsupportedModelError(f"the checkpoint lacks weights the {args.model_type} encoder needs: {missing[:5]}")
    # The file ships without the training setup's truncation and padding (all-MiniLM-L6-v2's: cut at
    # 128, pad to 128), which any `tokenizers` user would otherwise get on every encode; the manifest's
    # max_tokens is the one truncation, applied by the Embedder.
    spec = json.loads(reference.tokenizer.backend_tokenizer.to_str())
    spec["truncation"], spec["padding"] = None, None
    tokenizer_json = json.dumps(spec, ensure_ascii=False)
    prefix, suffix = _special_ids(tokenizer_json)
    pad = reference.tokenizer.pad_token_id
    if pad is None:
        raise UnsupportedModelError("the tokenizer has no padding token; an embedder batches padded inputs")

    with staging(output, force) as tmp:
        progress.stage("emitting the encoder graph")
        model = emit_encoder(args, weights, **recipe_options(rec))
        files = save_onnx(model, tmp, "model.onnx")
        del model
        (tmp / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        name = f"{src.spec.rstrip('/').split('/')[-1].lower()}-{rec.name}-embedder"
        manifest = {
            "kind": "embedder",
            "name": name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "architecture": args.to_dict(),
            "graph": {"flavour": "encoder", "files": {"encoder": files[0]}, "inputs": INPUTS, "outputs": OUTPUTS},
            "tokenizer": {"file": "tokenizer.json", "prefix_ids": prefix, "suffix_ids": suffix, "pad_token_id": int(pad)},
            "embedding": {**st.to_dict(), "batch_size": 32},
            "quantization": {"recipe": rec.name, "description": rec.description, "bits": rec.bits,
                             "block_size": rec.block_size, "accuracy_level": rec.accuracy_level, "method": rec.method},
            "device": {"profile": profile.name, "execution_providers": list(profile.execution_providers),
                       "threads": profile.threads},
            "provenance": {**src.provenance, "versions": versions},
            "validation": {"passed": None, "skipped": True},
        }
        manifest = write_manifest(tmp, manifest)
        if validate:
            from .validate import validate_embedder

            progress.stage("validating against sentence-transformers")
            manifest["validation"] = validate_embedder(tmp, reference, rec.name, progress)
            manifest = write_manifest(tmp, manifest)
        progress.stage(f"bundle written to {output}")
    return manifest
