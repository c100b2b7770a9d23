"""onnxruntime-genai's model builder, with Gemma 3's RoPE settings read as transformers 5 stores them.

    /work/anchors/ortgenai/bin/python benchmarks/anchors/build_ortgenai.py -i HF_DIR -o OUT -p int4 -e cpu -c CACHE

Same arguments as `python -m onnxruntime_genai.models.builder`. Why: onnxruntime-genai 0.18's `Gemma3Model` reads
`config.rope_local_base_freq` and a flat `config.rope_parameters["rope_type"]`, but transformers 5.x (5.23 in the
anchor venv) turns Gemma 3's config.json into `rope_parameters = {"full_attention": {...}, "sliding_attention":
{...}}` and drops `rope_local_base_freq`, so the builder stops with `KeyError: 'rope_type'` on any Gemma 3 (1B)
folder (its Gemma 4 builder already reads the nested form). Before the builder's Gemma 3 class starts, this flattens
the config object it was given: the global layers' settings become `rope_parameters` and `rope_theta` (else the
builder's default theta 10000 would be used for the global layers, not 1e6), the sliding layers' theta becomes
`rope_local_base_freq`. The weights are loaded by the builder from the folder again, with transformers' own config,
so the model itself is not changed. Other architectures go through untouched.
"""
from __future__ import annotations

import importlib
import runpy


def flatten_rope(config) -> None:
    params = getattr(config, "rope_parameters", None)
    if not (isinstance(params, dict) and "full_attention" in params and "sliding_attention" in params):
        return  # already flat (transformers 4.x) or not Gemma 3's form
    full, local = dict(params["full_attention"]), params["sliding_attention"]
    config.rope_local_base_freq = local.get("rope_theta", 10000.0)
    config.rope_theta = full.get("rope_theta", 1000000.0)
    config.rope_parameters = full


def patch(module_name: str) -> None:
    cls = importlib.import_module(module_name).Gemma3Model
    init = cls.__init__

    def patched_init(self, config, *args, **kwargs):
        flatten_rope(config)
        init(self, config, *args, **kwargs)

    cls.__init__ = patched_init


def main() -> None:
    import onnxruntime_genai.models  # noqa: F401  (puts the builder's folder on sys.path)

    # builder.py imports its classes as the top-level package `builders` (its folder is on sys.path), a module
    # object distinct from onnxruntime_genai.models.builders: patch the one it uses.
    patch("builders.gemma")
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
