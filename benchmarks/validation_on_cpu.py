"""Re-score an exported bundle's validation figures on another CPU (e.g. an emulated one), without re-exporting.

The int8 kernels onnxruntime picks (MatMulNBits at accuracy level 4, the embedder's int8 MatMuls) depend on
the CPU's instruction set, so an export's validation figures can differ between hosts while the bundle's
files are byte-identical. This recomputes the bundle side of those figures exactly as the export does
(exporters/validate.py `_quality`, exporters/embedder/validate.py `_cosines` / `_retrieval`); run the bundle
side under `qemu-x86_64-static -cpu MODEL` to see what another instruction set gives:

    # decoder: the validation's perplexity (first 512 tokens of the built-in eval text, one prefill pass),
    # against the fp32 transformers reference the manifest recorded at export
    qemu-x86_64-static -cpu EPYC-Rome .venv/bin/python benchmarks/validation_on_cpu.py ppl BUNDLE
    # embedder: the validation texts' vectors on that CPU, then (natively) the retrieval check against
    # sentence-transformers
    qemu-x86_64-static -cpu EPYC-Rome .venv/bin/python benchmarks/validation_on_cpu.py embed BUNDLE vectors.npy
    .venv/bin/python benchmarks/validation_on_cpu.py retrieval BUNDLE vectors.npy

(qemu 7.2's TCG has AVX2 but no AVX-512: `-cpu EPYC-Rome` is an AVX2-only x86-64. Emulated on a 2-core box:
~6 min for SmolLM2-135M's 511 tokens, ~12 min for MiniLM's 63 texts.)
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np


def _cpu() -> str:
    """The CPU as /proc/cpuinfo names it. Under qemu-user that file is the host's, while onnxruntime sees the
    emulated CPU's cpuid: the label then says "host", and the figures are the emulated CPU's."""
    flags = ""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    isa = [f for f in ("avx512_vnni", "avx512f", "avx_vnni", "avx2") if f" {f}" in flags]
    return f"{platform.machine()} (host /proc/cpuinfo: {'/'.join(isa) or 'no AVX2'})"


def ppl(bundle: Path) -> None:
    from edge_sdk.runtime.eval_text import EVAL_TEXT
    from edge_sdk.runtime.evaluate import perplexity
    from edge_sdk.runtime.model import load

    model = load(bundle, tokenizer_backend="pure")
    ids = model.encode_prompt(EVAL_TEXT, raw=True)[: min(512, model.max_context)]
    ours = perplexity(model, ids=ids, window=len(ids), stride=len(ids))
    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    ref = next(c for c in manifest["validation"]["checks"] if c["name"] == "perplexity")["figures"]["reference_ppl"]
    print(f"{_cpu()}: perplexity {ours['ppl']:.4f} vs fp32 transformers {ref} (from the manifest) "
          f"({ours['ppl'] / ref - 1:+.2%}) on {ours['tokens']} tokens")


def _texts() -> list[str]:
    from edge_sdk.exporters.embedder.corpus import PASSAGES, QUERIES
    from edge_sdk.exporters.embedder.validate import LONG_TEXT
    from edge_sdk.exporters.validate import TOKENIZER_TEXTS

    return TOKENIZER_TEXTS + [LONG_TEXT] + PASSAGES + QUERIES  # the order _cosines uses


def embed(bundle: Path, out: Path) -> None:
    from edge_sdk.runtime.model import load

    vectors = load(bundle, tokenizer_backend="pure").embed(_texts())
    np.save(out, vectors)
    print(f"{_cpu()}: {len(vectors)} vectors -> {out}")


def retrieval(bundle: Path, vectors: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from edge_sdk.exporters.embedder.validate import _retrieval
    from edge_sdk.exporters.sources import resolve

    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    ours = np.load(vectors)
    reference = SentenceTransformer(str(resolve("all-minilm-l6-v2").model_dir), device="cpu")
    theirs = reference.encode(_texts(), convert_to_numpy=True, normalize_embeddings=False).astype(np.float32)
    cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1) + 1e-12)
    f = _retrieval(ours, theirs, manifest["quantization"]["recipe"]).figures
    print(f"min cosine {cos.min():.6f}, median {np.median(cos):.6f}; top-5 identical on "
          f"{f['identical_top_k']}/{f['queries']}, {f['near_tie_swaps']} near-tie swaps, "
          f"first passage the same on {f['same_first']}/{f['queries']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("ppl").add_argument("bundle", type=Path)
    e = sub.add_parser("embed")
    e.add_argument("bundle", type=Path)
    e.add_argument("out", type=Path)
    r = sub.add_parser("retrieval")
    r.add_argument("bundle", type=Path)
    r.add_argument("vectors", type=Path)
    a = ap.parse_args()
    if a.what == "ppl":
        ppl(a.bundle)
    elif a.what == "embed":
        embed(a.bundle, a.out)
    else:
        retrieval(a.bundle, a.vectors)


if __name__ == "__main__":
    main()
