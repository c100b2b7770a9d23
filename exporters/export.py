"""The export pipeline, one direction: resolve -> load -> adapt -> emit -> quantize -> write -> validate.

    export("smollm2-135m-instruct", "bundles/smollm2", device="x86-64-laptop")

`_export` is the list of steps; each concern owns its step: sources.py resolves what the user typed,
adapters/ decides what happens to LoRA adapters (merged or switchable, checked for the profile), gguf/
decides which of a GGUF's own blocks the graph can take, the bundle kind picks its exporter (an encoder
goes to embedder/export.py), the flavour its graph emitter, validate.py checks the bundle against
transformers. Everything is written into a temporary folder that replaces `output` only when every
check has passed.
"""
from __future__ import annotations

import datetime
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import UnsupportedModelError, ValidationFailedError

from .bundle import check_output, save_onnx, staging, weights_path, write_manifest
from .generation import generation_section
from .graph.io import KV_TEMPLATES
from .progress import Progress, quiet_libraries
from .recipes import RECIPES, Recipe, get_recipe


def _versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime
    import torch
    import transformers

    from edge_sdk import __version__

    return {"edge_sdk": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__, "transformers": transformers.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def _turn_end_ids(hf_tok) -> set[int]:
    """The special token the chat template closes an assistant turn with (Gemma's <end_of_turn>, ChatML's
    <|im_end|>, Llama 3's <|eot_id|>): generation must stop there even when the file's eos is another token
    (a GGUF carries no generation_config.json to say so)."""
    if not hf_tok.chat_template:
        return set()
    mark = "EDGESDKMARK"
    try:
        text = hf_tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": mark}],
                                          tokenize=False)
    except Exception:  # a template that needs other roles or arguments: nothing to learn from it
        return set()
    if not isinstance(text, str) or mark not in text:
        return set()
    after = hf_tok(text.split(mark, 1)[1], add_special_tokens=False)["input_ids"]
    special = set(hf_tok.all_special_ids) | {i for i, t in hf_tok.added_tokens_decoder.items() if t.special}
    return {int(after[0])} if after and after[0] in special else set()


def _token_section(hf_tok, source) -> dict[str, Any]:
    gen = {}
    try:
        from transformers import GenerationConfig

        gen = GenerationConfig.from_pretrained(str(source.model_dir), **source._hf_kwargs()).to_dict()
    except Exception:  # many folders have no generation_config.json; the tokenizer's eos is then the answer
        pass
    eos = gen.get("eos_token_id", hf_tok.eos_token_id)
    eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None} |
                     ({int(hf_tok.eos_token_id)} if hf_tok.eos_token_id is not None else set()) |
                     _turn_end_ids(hf_tok))
    return {
        "file": "tokenizer.json",
        "bos_token": hf_tok.bos_token, "bos_token_id": hf_tok.bos_token_id,
        "eos_token": hf_tok.eos_token, "eos_token_ids": eos_ids,
        "pad_token_id": hf_tok.pad_token_id if hf_tok.pad_token_id is not None else (eos_ids[0] if eos_ids else None),
        # Whether plain-text prompts start with BOS; chat templates add their own control tokens.
        "add_bos": bool(getattr(hf_tok, "add_bos_token", False)),
    }


def _htp_offload(bundle: Path, fragment: dict[str, Any], profile, progress, prompt_ids: list[int]) -> dict[str, Any]:
    """Gate: every node on the HTP with CPU fallback disabled, and its logits agree with the CPU EP's."""
    from edge_sdk.errors import DeviceError

    from .npu_export import check_htp_offload

    progress.stage("checking the graphs on the QNN HTP backend (CPU fallback disabled): a short prompt and one step")
    try:
        result = check_htp_offload(bundle, fragment, profile, prompt_ids=prompt_ids)  # DeviceFitError if not
    except DeviceError as e:  # onnxruntime-qnn missing on this host: say so in the manifest, don't pretend
        progress.note(f"HTP check skipped: {e}")
        return {"checked": False, "reason": str(e)}
    progress.note(f"full offload: yes; {result['prompt_tokens']}-token prefill {result['prefill_seconds']} s, one decode "
                  f"step {result['decode_step_seconds']} s (simulated HTP); logit cosine vs the same graphs on CPU "
                  f"{result['logit_cosine_vs_cpu']:.4f}")
    return {"checked": True, **result}


def export(source: str, output: str | Path, *, device: str | None = None, recipe: str | None = None,
           max_context: int | None = None, force: bool = False, validate: bool = True,
           progress: Progress | bool = True, adapter: str | Path | None = None,
           adapters: dict[str, str | Path] | None = None, kv_cache: str | None = None) -> dict[str, Any]:
    """Export `source` (alias, HF folder, GGUF file or hub id) to an edge bundle at `output`.

    device: device profile name (default x86-64-laptop); it chooses flavour, recipe and context.
    recipe: override the profile's recipe (fp32, int8, int4-b32, ...).
    adapter: a PEFT LoRA folder merged into the weights before the graph is emitted; validation then
        compares against the PEFT model itself.
    adapters: {name: PEFT LoRA folder} switchable at run time (CPU flavour): the graph takes each
        layer's low-rank update as inputs, each adapter is its own file, each is validated against PEFT.
    kv_cache: "float", "int8" or "int4" - how the KV cache stores keys and values (fused flavour; default:
        the profile's); a quantized cache holds 4x (int8) or 8x (int4) the context in the same memory.
    progress: False silences this and the libraries' progress bars (transformers, tqdm).
    Returns the manifest.
    """
    progress = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    with quiet_libraries(not progress.enabled):
        return _export(source, output, device=device, recipe=recipe, max_context=max_context, force=force,
                       validate=validate, progress=progress, adapter=adapter, adapters=adapters, kv_cache=kv_cache)


def _export(source, output, *, device, recipe, max_context, force, validate, progress: Progress,
            adapter=None, adapters=None, kv_cache=None) -> dict[str, Any]:
    from edge_sdk.devices import DEFAULT_PROFILE, load_profile

    from .adapters import plan_adapters
    from .gguf.weights import source_blocks
    from .sources import resolve

    # resolve: the output, device, recipe, adapters and source, each checked before any slow work
    output = Path(output)
    check_output(output, force)
    profile = load_profile(device or DEFAULT_PROFILE)
    if recipe is not None:
        _recipe(recipe, profile)
    kv_format = _kv_format(kv_cache, profile)
    plan = plan_adapters(adapter, adapters, profile, progress)
    progress.stage(f"resolving {source}")
    src = resolve(source, progress)
    if src.role == "embedder":  # the bundle kind picks its exporter
        from .embedder.export import export_embedder

        return export_embedder(src, output, profile=profile, recipe=recipe, max_context=max_context,
                               adapters=bool(plan), force=force, validate=validate, progress=progress,
                               versions=_versions())
    args = src.args
    target = _target(args, recipe, profile, max_context, kv_format, progress)

    # load: the reference model, its tokenizer and its fp32 weights
    ref = _load(src, progress)

    # adapt: a merged adapter into the checkpoint's own tensors (Phi-3's fused qkv_proj), then the tensors split
    # as the emitter reads them, switchable adapters packed into slots, and a GGUF's own blocks where exact
    weights, reference = plan.merge(ref.weights, ref.model, src.names, progress)
    weights = args.prepare_weights(weights)
    packed = plan.pack(args, weights, src.names)
    blocks, gguf_import = source_blocks(src, args, weights, target.recipe, profile.flavour,
                                        merged=plan.merged is not None, progress=progress)

    with staging(output, force) as tmp:
        # emit and quantize: the profile's flavour of graph, its weights in the recipe's formats
        progress.stage(f"emitting the {profile.flavour} graph")
        if profile.flavour == "static":  # the NPU's fixed-shape graphs, calibrated and QDQ-quantized inside
            from .npu_export import export_static_bundle

            graph = export_static_bundle(args, weights, tmp, profile=profile, recipe=target.recipe,
                                         max_context=target.max_context, hf_tok=ref.tokenizer, progress=progress)
        else:
            graph = _fused_graph(args, weights, tmp, target, lora_slots=bool(plan.switchable), source_blocks=blocks,
                                 hf_tok=ref.tokenizer, progress=progress)
        del blocks
        # the manifest's quantization details: the static flavour's calibration, the GGUF blocks taken
        details = {**graph.pop("quantization_details", {}), **gguf_import}

        # write: the tokenizer, chat template and adapter files, and the manifest that lists every file
        files = _write_tokenizer(tmp, ref)
        adapted = plan.write(tmp, packed, args, weights)
        name = plan.bundle_name(f"{src.spec.rstrip('/').split('/')[-1].removesuffix('.gguf').lower()}-"
                                f"{target.recipe.name}-{profile.flavour}")
        manifest = write_manifest(tmp, _manifest(name, src, ref, target, graph, files, adapted, details))

        # validate: the bundle, run by our runtime, against transformers (and PEFT for each adapter)
        if validate:
            manifest = _validate(tmp, manifest, graph, reference, ref.tokenizer, target, plan, progress)
        progress.stage(f"bundle written to {output}")
    return manifest


def _recipe(name: str, profile) -> Recipe:
    """The named recipe, if it applies to the device profile's flavour."""
    rec = get_recipe(name)
    if profile.flavour not in rec.flavours:
        raise UnsupportedModelError(
            f"recipe {rec.name!r} does not apply to the {profile.flavour!r} flavour of device {profile.name!r}; "
            f"recipes for it: {', '.join(r for r, v in RECIPES.items() if profile.flavour in v.flavours)}"
        )
    return rec


def _kv_format(name: str | None, profile) -> str:
    """The KV-cache format (the profile's unless named), if the profile's flavour can store it."""
    from edge_sdk.runtime.kv_cache import KV_FORMATS

    fmt = name or getattr(profile, "kv_cache", None) or "float"
    if fmt not in KV_FORMATS:
        raise UnsupportedModelError(f"unknown KV-cache format {fmt!r}; known: {', '.join(KV_FORMATS)}")
    if fmt != "float" and profile.flavour != "fused":
        raise UnsupportedModelError(f"a {fmt} KV cache is a feature of onnxruntime's GroupQueryAttention (the fused CPU "
                                    f"flavour); device {profile.name!r} uses the {profile.flavour} flavour: drop --kv-cache "
                                    "or pick a CPU device profile")
    return fmt


@dataclass
class _Target:
    """What the bundle is built for, decided before minutes of loading."""

    profile: Any  # the device profile (devices/*.json)
    recipe: Recipe
    max_context: int
    fit: dict[str, Any]  # the memory-fit estimate (exporters/fit.py)
    kv_cache: str = "float"  # the KV-cache format (runtime/kv_cache.py KV_FORMATS)


def _target(args, recipe: str | None, profile, max_context: int | None, kv_cache: str, progress) -> _Target:
    """The decoder's recipe (the profile's unless named), context, KV-cache format and memory fit, checked
    for this model."""
    from .fit import check_fit

    rec = _recipe(recipe or profile.recipe, profile)
    ctx = int(max_context or min(profile.max_context, args.max_context_limit))
    progress.note(f"{args.model_type}: {args.num_hidden_layers} layers, hidden {args.hidden_size}, "
                  f"{args.parameter_count() / 1e6:.1f} M parameters; device {profile.name}: {profile.flavour} flavour, "
                  f"recipe {rec.name}, context {ctx}, KV cache {kv_cache}")
    args.check_context(ctx)
    return _Target(profile, rec, ctx, check_fit(args, rec, profile, ctx, kv_cache), kv_cache)


@dataclass
class _Loaded:
    """The source as transformers loads it: the reference model, its tokenizer, its fp32 weights."""

    model: Any
    tokenizer: Any
    tokenizer_json: str  # normalised (a GGUF's), as the bundle ships it
    notes: list[str]  # what the normalisation changed
    weights: dict[str, np.ndarray]


def _load(src, progress) -> _Loaded:
    progress.stage("loading weights with transformers (fp32)")
    hf_model = src.load_model()
    hf_tok, tokenizer_json, notes = src.load_tokenizer()
    for note in notes:
        progress.note(f"tokenizer: {note}")
    if not hf_tok.chat_template:
        progress.note("the model has no chat template: prompts will be plain text")
    weights = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}
    missing = [n for n in src.args.expected_weights() if n not in weights]
    if missing:
        raise UnsupportedModelError(f"the checkpoint lacks weights the {src.args.model_type} architecture needs: "
                                    f"{missing[:5]}")
    return _Loaded(hf_model, hf_tok, tokenizer_json, notes, weights)


def _fused_graph(args, weights, folder: Path, target: _Target, *, lora_slots: bool, source_blocks,
                 progress, hf_tok=None) -> dict[str, Any]:
    """The CPU graph (onnxruntime contrib ops), its weights written in the recipe's formats or quantized by
    onnxruntime's MatMulNBits quantizer, its KV cache in the target's format (calibrated on the graph itself,
    over prompts from `hf_tok`); returns the manifest's graph and kv_cache sections."""
    from .graph.decoder import emit_decoder
    from .quantize import apply_recipe
    from .recipes import emitter_options

    rec, ctx = target.recipe, target.max_context
    # Each weight goes to disk as it is made (a 1.1B model's export stays within a laptop's RAM), except where
    # onnxruntime's quantizer rewrites the fp32 graph in memory afterwards.
    streamed = weights_path(folder, "model.onnx") if rec.method != "ort-nbits" else None
    model = emit_decoder(args, weights, "fused", max_context=ctx, progress=progress, lora_slots=lora_slots,
                         source_blocks=source_blocks, weights_file=streamed,
                         **emitter_options(rec, args.num_hidden_layers))
    if rec.method == "ort-nbits":
        progress.stage(f"quantizing: {rec.description}")
        model = apply_recipe(model, rec)
    files = save_onnx(model, folder, "model.onnx")
    del model
    fragment = {
        "graph": {"flavour": "fused", "files": {"decoder": files[0]}, "max_context": ctx,
                  "inputs": ["input_ids", "seqlens_k", "total_sequence_length", "num_logits_to_keep"],
                  "outputs": ["logits"]},
        "kv_cache": {"mode": "shared-buffer", "layout": "BNSD", "dtype": "float32",
                     "num_layers": args.num_hidden_layers, "num_kv_heads": args.num_key_value_heads,
                     "head_dim": args.head_dim, "past": KV_TEMPLATES["past"], "present": KV_TEMPLATES["present"]},
    }
    if target.kv_cache != "float":
        fragment["kv_cache"].update(_quantize_kv(args, folder, fragment, target.kv_cache, hf_tok, progress))
    return fragment


def _quantize_kv(args, folder: Path, fragment: dict[str, Any], fmt: str, hf_tok, progress) -> dict[str, Any]:
    """Calibrate the saved float-cache graph's keys and values, then give it a `fmt` cache; returns the
    manifest's kv_cache fields for it (exporters/graph/kv_quant.py)."""
    import onnx

    from .graph.decoder import rope_inv_freq
    from .graph.kv_quant import calibrate, manifest_section, quantize_cache_io
    from .npu_export import calibration_ids

    sequences = calibration_ids(hf_tok, fragment["graph"]["max_context"])
    progress.stage(f"calibrating the {fmt} KV cache: {len(sequences)} prompts, {sum(map(len, sequences))} tokens")
    inv_freqs = [rope_inv_freq(args, local=args.is_sliding(i)) for i in range(args.num_hidden_layers)]
    calibration = calibrate(folder, fragment, args.vocab_size, inv_freqs, sequences)
    path = folder / fragment["graph"]["files"]["decoder"]
    model = quantize_cache_io(onnx.load(str(path), load_external_data=False), calibration, fmt)
    onnx.save_model(model, str(path))  # the small graph file; its weights file is untouched
    return manifest_section(fmt, calibration)


def _write_tokenizer(folder: Path, ref: _Loaded) -> dict[str, dict[str, Any]]:
    """tokenizer.json, the pure backend's fast-loading copy (a phone has no `tokenizers`; validation runs
    through it) and the chat template, if the model has one; returns the manifest entries naming them."""
    from edge_sdk.runtime.tokenizer.compact import COMPACT_FILE, write_compact

    (folder / "tokenizer.json").write_text(ref.tokenizer_json, encoding="utf-8")
    compact = write_compact(json.loads(ref.tokenizer_json), folder / COMPACT_FILE)
    chat = {}
    if ref.tokenizer.chat_template:
        (folder / "chat_template.jinja").write_text(ref.tokenizer.chat_template, encoding="utf-8")
        chat = {"file": "chat_template.jinja"}
    return {"tokenizer": {"compact_file": COMPACT_FILE} if compact else {}, "chat_template": chat}


def _manifest(name: str, src, ref: _Loaded, target: _Target, graph: dict, files: dict, adapted: dict,
              details: dict) -> dict[str, Any]:
    """The manifest before validation: every section the runtime reads (bundle.write_manifest adds the hashes)."""
    rec, profile = target.recipe, target.profile
    return {
        "name": name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "architecture": src.args.to_dict(),
        **graph,
        **({"lora": adapted["lora"]} if "lora" in adapted else {}),
        "tokenizer": {**_token_section(ref.tokenizer, src), **files["tokenizer"]},
        "chat_template": files["chat_template"],
        "generation": generation_section(src.model_dir if src.kind == "hf-folder" else None),
        "quantization": {**rec.manifest(), **details},
        "device": {"profile": profile.name, "execution_providers": list(profile.execution_providers),
                   "threads": profile.threads, "npu_only": profile.npu_only, "memory_fit": target.fit,
                   **({"kleidiai": profile.kleidiai} if profile.kleidiai is not None else {})},
        "provenance": {**src.provenance, "versions": _versions(), "tokenizer_normalisation": ref.notes},
        **({"adapter": adapted["adapter"]} if "adapter" in adapted else {}),
        "validation": {"passed": None, "skipped": True},
    }


def _validate(folder: Path, manifest: dict, graph: dict, reference, hf_tok, target: _Target, plan,
              progress) -> dict[str, Any]:
    """The validation sections of the manifest (ValidationFailedError if a check fails); the manifest rewritten."""
    from edge_sdk.devices import DEFAULT_PROFILE

    from .references import with_peft_adapter
    from .validate import validate_bundle

    rec, profile = target.recipe, target.profile
    if target.kv_cache != "float":  # a quantized cache is held to agreement and perplexity, not fp32 logits
        import dataclasses

        from .graph.kv_quant import MAX_PPL_INCREASE

        rec = dataclasses.replace(rec, logits_atol=None,
                                  max_ppl_increase=rec.max_ppl_increase + MAX_PPL_INCREASE[target.kv_cache])

    # NPU bundles are validated as QDQ on this host's CPU (a simulated HTP takes ~10 s a token);
    # the HTP itself is checked below for full offload.
    on_host = DEFAULT_PROFILE if profile.flavour == "static" else None
    progress.stage("validating against transformers" + (" (QDQ graphs on the host CPU)" if on_host else ""))
    try:
        manifest["validation"] = validate_bundle(folder, reference, hf_tok, rec, progress, device=on_host)
    except ValidationFailedError as e:
        if target.kv_cache == "float":
            raise
        hint = "--kv-cache int8" if target.kv_cache == "int4" else "--kv-cache float"
        raise ValidationFailedError(f"{e} (with an {target.kv_cache} KV cache: try {hint})") from None
    for name, lora in plan.switchable.items():
        progress.stage(f"validating the adapter {name} against PEFT")
        reference = with_peft_adapter(reference, name, lora.path)
        result = validate_bundle(folder, reference, hf_tok, rec, progress, device=on_host, adapter=name)
        manifest["lora"]["adapters"][name]["validation"] = result
    if "QNNExecutionProvider" in profile.execution_providers:
        from .npu_export import calibration_ids

        # 12 tokens of a chat prompt: its start token is the one with the extreme activations.
        prompt = calibration_ids(hf_tok, 12)[0]
        manifest["validation"]["htp_offload"] = _htp_offload(folder, graph, profile, progress, prompt)
    return write_manifest(folder, manifest)
