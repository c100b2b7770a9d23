"""Re-quantize a GGUF with llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize), e.g. to the
Q4_K_M mix published GGUFs use, to test exact k-quant import on real weights:

    /work/bench-venvs/llamacpp/bin/python benchmarks/make_kquant_gguf.py SRC.gguf OUT.gguf --type Q4_K_M

Run it with the llamacpp anchor venv (benchmarks/setup_anchors.sh builds it). SmolLM2-135M's width (576) is
not a multiple of the k-quants' 256-wide super-blocks, so llama.cpp falls back to Q5_0 for most of its
matrices: the result mixes Q5_0, Q4_K, Q6_K and Q8_0.
"""
from __future__ import annotations

import argparse
import ctypes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source")
    p.add_argument("output")
    p.add_argument("--type", default="Q4_K_M", help="a llama.cpp file type: Q4_K_M, Q5_K_M, Q6_K, Q4_0, ...")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{args.type}")
    params.allow_requantize = True  # the source may itself be quantized (the offline SmolLM2 is Q4_1)
    params.nthread = args.threads
    rc = llama_cpp.llama_model_quantize(args.source.encode(), args.output.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed with {rc}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
