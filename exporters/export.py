"""The export pipeline: source -> graph -> recipe -> bundle -> validation, one direction.

    export("smollm2-135m-instruct", "bundles/smollm2", device="x86-64-laptop")

Writes into a temporary folder that replaces `output` only when every check has passed.
"""
from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

from edge_sdk.errors import UnsupportedModelError

from .bundle import check_output, save_onnx, staging, write_manifest
from .graph.io import KV_TEMPLATES
from .progress import Progress, quiet_libraries
from .recipes import RECIPES, get_recipe


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
           adapters: dict[str, str | Path] | None = None) -> dict[str, Any]:
    """Export `source` (alias, HF folder, GGUF file or hub id) to an edge bundle at `output`.

    device: device profile name (default x86-64-laptop); it chooses flavour, recipe and context.
    recipe: override the profile's recipe (fp32, int8, int4-b32, ...).
    adapter: a PEFT LoRA folder merged into the weights before the graph is emitted; validation then
        compares against the PEFT model itself.
    adapters: {name: PEFT LoRA folder} switchable at run time (CPU flavour): the graph takes each
        layer's low-rank update as inputs, each adapter is its own file, each is validated against PEFT.
    progress: False silences this and the libraries' progress bars (transformers, tqdm).
    Returns the manifest.
    """
    progress = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    with quiet_libraries(not progress.enabled):
        return _export(source, output, device=device, recipe=recipe, max_context=max_context, force=force,
                       validate=validate, progress=progress, adapter=adapter, adapters=adapters)


def _peft_reference(hf_model, adapter_dir: Path):
    """The base model with the adapter applied by PEFT itself (not merged): the reference we validate against."""
    try:
        from peft import PeftModel
    except ImportError as e:
        from edge_sdk import install_hint
        from edge_sdk.errors import SourceError

        raise SourceError(f"exporting with an adapter needs peft (the reference it is checked against): "
                          f"{install_hint('export')}") from e
    return PeftModel.from_pretrained(hf_model, str(adapter_dir)).eval()


def _read_switchable(adapters: dict, profile, progress) -> dict:
    """{name: LoraAdapter} for --adapters, checked before any slow work."""
    if not adapters:
        return {}
    from edge_sdk.runtime.lora.slots import MAX_ADAPTERS, valid_name

    from .adapters import read_adapter

    if profile.flavour != "fused":
        raise UnsupportedModelError(
            f"run-time adapters (--adapters) need the CPU graph; {profile.name} compiles a static graph whose weights "
            "the NPU holds as constants (a QNN context binary bakes them in), so there an adapter is merged: "
            "--adapter PEFT_DIR")
    if len(adapters) > MAX_ADAPTERS:
        raise UnsupportedModelError(f"at most {MAX_ADAPTERS} adapters per bundle, got {len(adapters)}")
    out = {}
    for name, path in adapters.items():
        if not valid_name(name):
            raise UnsupportedModelError(f"adapter name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
        out[name] = read_adapter(path, name)
        progress.note(f"adapter {name}: LoRA rank {out[name].describe()['rank']}, {len(out[name].modules)} modules, "
                      "switchable at run time")
    return out


def _base_names(src) -> list[str]:
    """The names this source goes by, against which an adapter's base_model_name_or_path is checked."""
    names = [src.provenance.get("hub_id"), src.spec, src.provenance.get("gguf_name"), src.config.get("_name_or_path")]
    return [str(n) for n in names if n]


def _gguf_blocks(src, args, weights, rec, profile, *, merged: bool, progress) -> tuple[dict, dict]:
    """A GGUF's own quantized blocks for the CPU default recipe (exporters/gguf/weights.py): each matrix the
    file holds in a block format with an exact int4/int8 form is used as it is, not re-quantized.
    Returns ({HF name: Blocks}, the manifest's `gguf_import` entry)."""
    if src.kind != "gguf" or not rec.source_blocks or profile.flavour != "fused" or merged:
        return {}, {}
    from edge_sdk.runtime.lora import SLOTS

    from .gguf.weights import keep_whole_groups, read_source_blocks, summarize

    progress.stage("reading the GGUF's quantized blocks (taken exactly, checked against transformers' weights)")
    names = [n for n in args.expected_weights() if weights[n].ndim == 2]
    blocks, report = read_source_blocks(src.path, src.provenance.get("gguf_arch") or args.model_type,
                                        args.num_hidden_layers, weights, names)
    keep_whole_groups(blocks, report, ([args.weight_name(lg, i) for lg in packed] for packed in SLOTS.values()
                                       for i in range(args.num_hidden_layers)))
    summary = summarize(report)
    for qtype, row in summary.items():
        progress.note(f"GGUF {qtype}: {row['exact']} tensors taken exactly (max |difference| {row['max_abs_diff']:.2g}), "
                      f"{row['requantized']} re-quantized as {rec.name}")
    for name, entry in report.items():
        if not entry.get("exact") and entry.get("type") is not None:
            progress.note(f"  {name} ({entry['type']}): {entry['why']}")
    # Fused checkpoint tensors (Phi-3's qkv_proj) split into the rows the emitter reads, as the weights were.
    return args.prepare_weights(blocks), {"gguf_import": {"summary": summary, "tensors": report}}


def _write_switchable(tmp: Path, switchable: dict, packed: dict, args, weights) -> dict[str, Any]:
    """The adapter files and the manifest's `lora` section."""
    from .adapters import slot_dims, write_adapter_file

    section = {"layers": args.num_hidden_layers, "slots": slot_dims(args, weights), "adapters": {}}
    for name, lora in switchable.items():
        file = f"adapters/{name}.npz"
        write_adapter_file(packed[name], tmp / file)
        section["adapters"][name] = {"file": file, **lora.describe()}
    return section


def _with_peft_adapter(hf_model, name: str, path: Path):
    """The PEFT reference with adapter `name` active (the first one wraps the base model)."""
    from peft import PeftModel

    if isinstance(hf_model, PeftModel):
        hf_model.load_adapter(str(path), adapter_name=name)
        hf_model.set_adapter(name)
        return hf_model.eval()
    return PeftModel.from_pretrained(hf_model, str(path), adapter_name=name).eval()


def _export(source, output, *, device, recipe, max_context, force, validate, progress: Progress,
            adapter=None, adapters=None) -> dict[str, Any]:
    from edge_sdk.devices import DEFAULT_PROFILE, load_profile

    output = Path(output)
    check_output(output, force)  # before any slow work
    profile = load_profile(device or DEFAULT_PROFILE)
    rec = get_recipe(recipe or profile.recipe)
    if profile.flavour not in rec.flavours:
        raise UnsupportedModelError(
            f"recipe {rec.name!r} does not apply to the {profile.flavour!r} flavour of device {profile.name!r}; "
            f"recipes for it: {', '.join(r for r, v in RECIPES.items() if profile.flavour in v.flavours)}"
        )

    from . import sources

    lora = None
    if adapter is not None:  # read and checked before minutes of loading
        from .adapters import read_adapter

        lora = read_adapter(adapter)
        progress.note(f"adapter {lora.name}: LoRA rank {lora.describe()['rank']}, {len(lora.modules)} modules "
                      f"({', '.join(lora.targets)})")
    switchable = _read_switchable(adapters or {}, profile, progress)
    progress.stage(f"resolving {source}")
    src = sources.resolve(source, progress)
    if src.role == "embedder":
        if lora is not None or switchable:
            raise UnsupportedModelError("adapters apply to language models, not to embedders")
        from .embedder.export import export_embedder

        if max_context is not None:
            raise UnsupportedModelError("--max-context applies to decoders; an embedder's input length comes from "
                                        "its sentence-transformers config")
        return export_embedder(src, output, profile=profile, recipe=recipe, force=force, validate=validate,
                               progress=progress, versions=_versions())
    args = src.args
    ctx = int(max_context or min(profile.max_context, args.max_context_limit))
    progress.note(f"{args.model_type}: {args.num_hidden_layers} layers, hidden {args.hidden_size}, "
                  f"{args.parameter_count() / 1e6:.1f} M parameters; device {profile.name}: {profile.flavour} flavour, "
                  f"recipe {rec.name}, context {ctx}")
    args.check_context(ctx)  # before minutes of loading
    from .fit import check_fit

    fit = check_fit(args, rec, profile, ctx)

    progress.stage("loading weights with transformers (fp32)")
    hf_model = src.load_model()
    hf_tok, tokenizer_json, tok_notes = src.load_tokenizer()
    for note in tok_notes:
        progress.note(f"tokenizer: {note}")
    if not hf_tok.chat_template:
        progress.note("the model has no chat template: prompts will be plain text")
    weights = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}
    missing = [n for n in args.expected_weights() if n not in weights]
    if missing:
        raise UnsupportedModelError(f"the checkpoint lacks weights the {args.model_type} architecture needs: {missing[:5]}")
    if lora is not None:  # into the checkpoint's own tensors (Phi-3's fused qkv_proj), before they are split
        from .adapters import merge_adapter

        progress.stage(f"merging the adapter {lora.name} into the weights")
        weights = merge_adapter(weights, lora, _base_names(src))
        hf_model = _peft_reference(hf_model, lora.path)
    weights = args.prepare_weights(weights)
    packed = {}
    if switchable:
        from .adapters import pack_adapter

        packed = {n: pack_adapter(a, args, weights, _base_names(src)) for n, a in switchable.items()}

    source_blocks, gguf_import = _gguf_blocks(src, args, weights, rec, profile, merged=lora is not None,
                                              progress=progress)

    with staging(output, force) as tmp:
        progress.stage(f"emitting the {profile.flavour} graph")
        if profile.flavour == "static":
            from .npu_export import export_static_bundle

            graph_section = export_static_bundle(args, weights, tmp, profile=profile, recipe=rec, max_context=ctx,
                                                 hf_tok=hf_tok, progress=progress)
        else:
            from .graph.decoder import emit_decoder
            from .quantize import apply_recipe
            from .recipes import emitter_options

            model = emit_decoder(args, weights, "fused", max_context=ctx, progress=progress, lora_slots=bool(switchable),
                                 source_blocks=source_blocks, **emitter_options(rec, args.num_hidden_layers))
            del source_blocks
            if rec.method == "ort-nbits":
                progress.stage(f"quantizing: {rec.description}")
                model = apply_recipe(model, rec)
            files = save_onnx(model, tmp, "model.onnx")
            del model
            graph_section = {
                "graph": {"flavour": "fused", "files": {"decoder": files[0]}, "max_context": ctx,
                          "inputs": ["input_ids", "seqlens_k", "total_sequence_length", "num_logits_to_keep"],
                          "outputs": ["logits"]},
                "kv_cache": {"mode": "shared-buffer", "layout": "BNSD", "dtype": "float32",
                             "num_layers": args.num_hidden_layers, "num_kv_heads": args.num_key_value_heads,
                             "head_dim": args.head_dim,
                             "past": KV_TEMPLATES["past"], "present": KV_TEMPLATES["present"]},
            }
        quant_details = graph_section.pop("quantization_details", {})  # static flavour: calibration etc.
        if switchable:
            graph_section["lora"] = _write_switchable(tmp, switchable, packed, args, weights)
        (tmp / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        from edge_sdk.runtime.tokenizer.compact import COMPACT_FILE, write_compact

        # The pure backend's fast-loading copy (a phone has no `tokenizers`); validation runs through it.
        compact = write_compact(json.loads(tokenizer_json), tmp / COMPACT_FILE)
        chat = {}
        if hf_tok.chat_template:
            (tmp / "chat_template.jinja").write_text(hf_tok.chat_template, encoding="utf-8")
            chat = {"file": "chat_template.jinja"}
        name = f"{src.spec.rstrip('/').split('/')[-1].removesuffix('.gguf').lower()}-{rec.name}-{profile.flavour}"
        if lora is not None:
            name = f"{name}+{lora.name.lower()}"
        manifest = {
            "name": name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "architecture": args.to_dict(),
            **graph_section,
            "tokenizer": {**_token_section(hf_tok, src), **({"compact_file": COMPACT_FILE} if compact else {})},
            "chat_template": chat,
            "generation": {"max_new_tokens": 256, "temperature": 0.0, "top_k": 0, "top_p": 1.0},
            "quantization": {**rec.manifest(), **quant_details, **gguf_import},
            "device": {"profile": profile.name, "execution_providers": list(profile.execution_providers),
                       "threads": profile.threads, "npu_only": profile.npu_only, "memory_fit": fit},
            "provenance": {**src.provenance, "versions": _versions(), "tokenizer_normalisation": tok_notes},
            **({"adapter": {"merged": True, **lora.describe()}} if lora is not None else {}),
            "validation": {"passed": None, "skipped": True},
        }
        manifest = write_manifest(tmp, manifest)
        if validate:
            from .validate import validate_bundle

            # NPU bundles are validated as QDQ on this host's CPU (a simulated HTP takes ~10 s a token);
            # the HTP itself is checked below for full offload.
            on_host = DEFAULT_PROFILE if profile.flavour == "static" else None
            progress.stage("validating against transformers" + (" (QDQ graphs on the host CPU)" if on_host else ""))
            manifest["validation"] = validate_bundle(tmp, hf_model, hf_tok, rec, progress, device=on_host)
            for name, spec in switchable.items():
                progress.stage(f"validating the adapter {name} against PEFT")
                hf_model = _with_peft_adapter(hf_model, name, spec.path)
                result = validate_bundle(tmp, hf_model, hf_tok, rec, progress, device=on_host, adapter=name)
                manifest["lora"]["adapters"][name]["validation"] = result
            if "QNNExecutionProvider" in profile.execution_providers:
                from .npu_export import calibration_ids

                # 12 tokens of a chat prompt: its start token is the one with the extreme activations.
                prompt = calibration_ids(hf_tok, 12)[0]
                manifest["validation"]["htp_offload"] = _htp_offload(tmp, graph_section, profile, progress, prompt)
            manifest = write_manifest(tmp, manifest)
        progress.stage(f"bundle written to {output}")
    return manifest
