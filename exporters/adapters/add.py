"""Adding a run-time adapter to an exported bundle, without exporting the base model again.

    add_adapter("bundles/smollm2", "support", "lora/support")     # edge-sdk adapter add BUNDLE support=lora/support

The bundle must have adapter slots (exported with --adapters). The adapter is checked against the
shapes the manifest records, written as adapters/NAME.npz, and the manifest is rewritten with the
new file's hash; each step replaces its file in one rename, so an interrupted add leaves the bundle
as it was (at most an unlisted file behind). With `source` (the model the bundle was exported from),
the adapter is validated against PEFT on it, as at export.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import BundleError, OutputExistsError
from edge_sdk.runtime.bundle import MANIFEST_NAME, SIGNATURE_NAME, read_manifest

from .peft_lora import read_adapter
from .slots import pack_adapter, write_adapter_file


def _shapes(manifest: dict[str, Any]):
    """The base weights' shapes from the manifest's architecture, as zero-stride arrays (no memory):
    all pack_adapter needs to check and place an adapter."""
    from ..architectures import args_from_config

    args = args_from_config(manifest["architecture"])
    h, q, kv, f = args.hidden_size, args.q_dim, args.kv_dim, args.intermediate_size
    dims = {"q": (q, h), "k": (kv, h), "v": (kv, h), "o": (h, q), "gate": (f, h), "up": (f, h), "down": (h, f)}
    zero = np.zeros(1, np.float32)
    weights = {args.weight_name(lg, i): np.lib.stride_tricks.as_strided(zero, shape, (0, 0))
               for i in range(args.num_hidden_layers) for lg, shape in dims.items()}
    from edge_sdk.runtime.lora import SLOTS

    for i in range(args.num_hidden_layers):  # a checkpoint's fused tensors (Phi-3's qkv_proj), which adapters target
        for slot, logicals in SLOTS.items():
            fused = args.fused_weight(slot, i)
            if fused is not None:
                shape = (sum(dims[lg][0] for lg in logicals), dims[logicals[0]][1])
                weights[fused] = np.lib.stride_tricks.as_strided(zero, shape, (0, 0))
    return args, weights


def add_adapter(bundle: str | os.PathLike, name: str, adapter_dir: str | os.PathLike, *, force: bool = False,
                source: str | None = None, progress=None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add adapter `name` from a PEFT folder to `bundle`; returns its manifest entry (`extra`: more fields for
    it, e.g. how a merged adapter was made)."""
    from ..bundle import write_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle, verify=True)
    lora = manifest.get("lora")
    if manifest.get("kind", "decoder") != "decoder" or not lora:
        raise BundleError(f"{bundle} has no adapter slots: it was exported without --adapters. Export it again with "
                          f"`edge-sdk export SOURCE --adapters {name}=PEFT_DIR`, or merge this adapter with --adapter")
    if name in (lora.get("adapters") or {}) and not force:
        raise OutputExistsError(f"{bundle} already has an adapter {name!r}; pass --force to replace it")
    adapter = read_adapter(adapter_dir, name)
    args, weights = _shapes(manifest)
    names = [manifest.get("provenance", {}).get(k) for k in ("hub_id", "source", "gguf_name")]
    packed = pack_adapter(adapter, args, weights, [str(n) for n in names if n])
    file = f"adapters/{name}.npz"
    # The partial and backup files live beside the bundle, not in it: the manifest lists every file inside.
    final = bundle / file
    partial, backup = bundle.parent / f".{bundle.name}.{name}.npz.partial", bundle.parent / f".{bundle.name}.{name}.npz.old"
    old_manifest = (bundle / MANIFEST_NAME).read_bytes()
    signature = bundle / SIGNATURE_NAME
    old_signature = signature.read_bytes() if signature.exists() else None
    entry = {"file": file, **adapter.describe(), **(extra or {}),
             "validation": {"passed": None, "skipped": True,
                            "reason": "added with `edge-sdk adapter add` without --source; shapes checked only"}}
    base = {k: v for k, v in manifest.items() if k not in ("format", "schema_version", "files")}

    def with_entry(e):
        return {**base, "lora": {**lora, "adapters": {**(lora.get("adapters") or {}), name: e}}}

    try:
        write_adapter_file(packed, partial)
        if final.exists():
            os.replace(final, backup)
        final.parent.mkdir(exist_ok=True)
        os.replace(partial, final)
        if signature.exists():  # it signs the old manifest: a stale signature would make the bundle look tampered
            signature.unlink()
        if source is not None:  # the runtime loads adapters the manifest lists: list it, then validate
            write_manifest(bundle, with_entry({**entry, "validation": {"passed": None, "pending": True}}))
            entry["validation"] = _validate(bundle, manifest, name, adapter.path, source, progress)
        write_manifest(bundle, with_entry(entry))
        read_manifest(bundle, verify=True)  # what the device will do
    except BaseException:
        _restore(bundle / MANIFEST_NAME, old_manifest)
        if old_signature is not None:
            _restore(signature, old_signature)
        final.unlink(missing_ok=True)
        if backup.exists():
            os.replace(backup, final)
        raise
    finally:
        partial.unlink(missing_ok=True)
        backup.unlink(missing_ok=True)
    return entry


def _restore(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".restore")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _validate(bundle: Path, manifest: dict, name: str, adapter_path: Path, source: str, progress) -> dict[str, Any]:
    from ..progress import Progress
    from ..recipes import get_recipe
    from ..references import with_peft_adapter
    from ..sources import resolve
    from ..validate import validate_bundle

    progress = progress or Progress(enabled=False)
    src = resolve(source, progress)
    hf_tok, _, _ = src.load_tokenizer()
    reference = with_peft_adapter(src.load_model(), name, adapter_path)
    return validate_bundle(bundle, reference, hf_tok, get_recipe(manifest["quantization"]["recipe"]), progress,
                           adapter=name)


def list_adapters(bundle: str | os.PathLike) -> dict[str, dict[str, Any]]:
    manifest = read_manifest(Path(bundle), verify=False)
    return dict((manifest.get("lora") or {}).get("adapters") or {})


__all__ = ["add_adapter", "list_adapters"]
