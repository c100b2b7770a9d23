"""How far a bundle's greedy output follows transformers fp32, on many chat prompts, and where it parts.

    .venv/bin/python benchmarks/greedy_agreement.py BUNDLE [--new-tokens 16] [--htp] [--prompts N]

For each prompt: the number of leading tokens identical to transformers' greedy continuation (eos
suppressed on both sides), and at the first difference the fp32 model's own top-2 logit gap there.
A quantized model parts from fp32 at its near-ties first, so the gap says whether a divergence is
a coin flip in fp32 itself (gap ~0.1) or a real error (gap of several logits).

Runs the bundle on the CPU EP by default; QDQ bundles then execute as exact QDQ, which the QNN HTP
reproduces to ~50 dB (benchmarks/npu_validate.py), so the CPU run predicts the NPU. `--htp` runs it
on the QNN HTP instead (slow on the x86 simulator: ~11 s per token). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Give me three tips for staying focused while studying.",
    "Explain what a black hole is in two sentences.",
    "How do I make a cup of green tea?",
    "What are the primary colors?",
    "Write a Python function that returns the square of a number.",
    "Name three animals that live in the ocean.",
    "Why is the sky blue?",
    "Suggest a name for a small coffee shop.",
    "What is the boiling point of water in Celsius?",
    "Describe a sunset in one sentence.",
    "How many days are there in a leap year?",
    "Give me a synonym for happy.",
    "What does a computer's CPU do?",
    "Tell me a fun fact about honeybees.",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help=f"how many of the {len(PROMPTS)} built-in prompts")
    ap.add_argument("--htp", action="store_true", help="run on the QNN HTP backend, CPU fallback disabled")
    opts = ap.parse_args()

    from npu_validate import agree, chat_ids, greedy, reference_greedy, top2_gaps  # same folder: one copy of each

    from edge_sdk.exporters.sources import resolve
    from edge_sdk.runtime.engine import engine_class
    from edge_sdk.runtime.bundle import read_manifest
    from edge_sdk.runtime.providers import SessionConfig

    bundle = Path(opts.bundle)
    manifest = read_manifest(bundle, verify=False)
    src = resolve("smollm2-135m-instruct")
    model = src.load_model()
    tok, _, _ = src.load_tokenizer()
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    config = SessionConfig(providers=["QNNExecutionProvider"], npu_only=True) if opts.htp else SessionConfig()
    engine = engine_class(manifest["graph"]["flavour"])(manifest, bundle, config)

    rows = []
    t0 = time.perf_counter()
    for text in PROMPTS[: opts.prompts]:
        ids = chat_ids(tok, text)
        ref = reference_greedy(model, ids, opts.new_tokens)
        ours = greedy(engine, ids, opts.new_tokens, [], eos)
        n = agree(ours, ref)
        gap = top2_gaps(model, ids, ref)[n] if n < len(ref) else None
        rows.append({"prompt": text, "agree": n, "fp32_top2_gap_at_divergence": gap,
                     "fp32": tok.decode(ref), "bundle": tok.decode(ours)})
        print(json.dumps(rows[-1]), flush=True)
    agreed = [r["agree"] for r in rows]
    gaps = [r["fp32_top2_gap_at_divergence"] for r in rows if r["fp32_top2_gap_at_divergence"] is not None]
    print(json.dumps({
        "bundle": str(bundle), "recipe": manifest.get("quantization", {}).get("recipe"),
        "device": "QNN HTP (simulated), CPU fallback disabled" if opts.htp else "CPU EP",
        "new_tokens": opts.new_tokens, "prompts": len(rows),
        "prompts_agreeing_8_plus": sum(a >= 8 for a in agreed),
        "prompts_agreeing_fully": sum(a == opts.new_tokens for a in agreed), "median_agreement": float(np.median(agreed)),
        "divergences_at_fp32_near_ties_lt_0.5": sum(g < 0.5 for g in gaps), "divergences": len(gaps),
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
