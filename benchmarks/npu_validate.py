"""Prove the NPU path on a real model: SmolLM2-135M -> static w8a16 QDQ -> simulated QNN HTP.

Exports the static prefill/decode graphs, quantizes them with calibration on varied text, compiles
them into context binaries, runs them on the QNN HTP backend with CPU fallback disabled (so every
node is on the NPU), and compares with transformers fp32: greedy agreement on chat prompts and the
perplexity delta on a text. The same QDQ graphs on the CPU EP are measured too, to separate
quantization error from HTP numerics. Prints one JSON object.

    python benchmarks/npu_validate.py [--chunk 32] [--max-context 256] [--new-tokens 10] [--out DIR]

The x86_64 HTP is a simulator: seconds per token here say nothing about a phone.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Give me three tips for staying focused while studying.",
]
# Calibration text differs from the evaluation prompts and text on purpose.
CALIBRATION_CHATS = [
    "Explain photosynthesis to a ten year old.",
    "How do I reverse a list in Python?",
    "List five fruits that are high in vitamin C.",
    "What causes the seasons on Earth?",
    "Translate 'good morning' into Spanish and French.",
    "Summarise the plot of Romeo and Juliet in two sentences.",
]
CALIBRATION_TEXT = (
    "The history of the bicycle begins in the early nineteenth century, when inventors in Europe built "
    "wooden running machines that riders pushed along with their feet. Pedals, chains and pneumatic tyres "
    "came later, and by 1900 cycling had become a popular pastime and a cheap way to travel to work. "
    "Numbers such as 42, 3.14 and 2024 appear in text too, as do lists: apples, pears; red, green, blue."
)
EVAL_TEXT = (
    "Rivers shape the land they flow through. Over thousands of years, moving water carves valleys, carries "
    "sand and stones downstream, and builds fertile plains where it floods. Many of the first cities grew "
    "beside rivers because the water supported farming, trade and travel. Today rivers still provide "
    "drinking water, electricity and habitats for countless plants and animals."
)


def chat_ids(tok, text: str) -> list[int]:
    out = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def greedy(engine, prompt: list[int], n: int, times: list[float], eos: int | None = None) -> list[int]:
    """n greedy tokens; `eos` is never picked, as transformers' min_new_tokens does for the reference
    (otherwise a short answer like "Paris.<|im_end|>" counts as a disagreement at the eos)."""
    engine.reset()
    t = time.perf_counter()
    logits = engine.forward(prompt)
    times.append(time.perf_counter() - t)
    out = []
    for _ in range(n):
        if eos is not None:
            logits = logits.copy()
            logits[eos] = -np.inf
        out.append(int(np.argmax(logits)))
        t = time.perf_counter()
        logits = engine.forward([out[-1]])
        times.append(time.perf_counter() - t)
    return out


def reference_greedy(model, prompt: list[int], n: int) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return out[0, len(prompt):].tolist()


def nll(logits: np.ndarray, ids: list[int]) -> float:
    """Mean negative log-likelihood of ids[1:] given logits [len(ids), V] (positions 0..n-2 used)."""
    x = logits[:-1].astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean())


def teacher_forced(engine, prompt: list[int], ref: list[int], eos: int | None = None) -> int:
    """How many of the reference's tokens are the engine's argmax when fed the reference prefix.

    Free-running agreement ends at the first near-tie the quantized model breaks the other way
    (SmolLM2's fp32 top-2 gap is 0.08 logits on the first token of the first prompt); this counts
    every position separately.
    """
    engine.reset()
    logits = engine.forward(prompt + ref[:-1], all_logits=True)[len(prompt) - 1:]
    if eos is not None:
        logits[:, eos] = -np.inf
    return int((logits.argmax(-1) == np.asarray(ref)).sum())


def top2_gaps(model, prompt: list[int], ref: list[int]) -> list[float]:
    """fp32 logit gap between the best and second-best token at each reference position."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([prompt + ref[:-1]])).logits[0, len(prompt) - 1:].numpy()
    top = np.sort(logits, axis=-1)[:, -2:]
    return [round(float(a - b), 2) for b, a in top]


def agree(a: list[int], b: list[int]) -> int:
    """Length of the common prefix."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--max-context", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=10)
    p.add_argument("--recipe", default="w8a16-qdq")
    p.add_argument("--htp-teacher-forced", action="store_true", help="also teacher-force on the (slow) simulated HTP")
    p.add_argument("--out", default=None, help="keep the exported graphs here (default: a temp folder)")
    opts = p.parse_args()

    import torch

    from edge_sdk.exporters.context_binary import compile_bundle_graphs
    from edge_sdk.exporters.graph.static import export_static
    from edge_sdk.exporters.sources import resolve
    from edge_sdk.runtime.providers import SessionConfig
    from edge_sdk.runtime.static_engine import StaticEngine

    report: dict = {"model": "smollm2-135m-instruct", "recipe": opts.recipe, "chunk": opts.chunk,
                    "max_context": opts.max_context}
    t0 = time.perf_counter()
    src = resolve("smollm2-135m-instruct")
    model = src.load_model()
    tok, _, _ = src.load_tokenizer()
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    out_dir = Path(opts.out or tempfile.mkdtemp(prefix="npu_validate_"))
    from edge_sdk.exporters.npu_export import calibration_ids

    calibration = calibration_ids(tok, opts.max_context)  # what `edge-sdk export` calibrates on
    t = time.perf_counter()
    fragment = export_static(src.args, weights, out_dir, opts.chunk, opts.max_context, opts.recipe, calibration)
    report["export_seconds"] = round(time.perf_counter() - t, 1)
    report["quantization"] = fragment["quantization"]
    report["graph_mb"] = {k: round((out_dir / f).stat().st_size / 1e6, 1) for k, f in fragment["graph"]["files"].items()}
    t = time.perf_counter()
    from edge_sdk.runtime.qnn import fp16_options

    # The residual stream stays float (fp16 on the HTP): QNN needs htp_arch + soc_model for that.
    fragment["graph"]["qnn_options"] = fp16_options("v75", "SM8650")
    report["context_binaries"] = compile_bundle_graphs(out_dir, fragment, htp_arch="75", soc_model="SM8650")
    report["compile_seconds_total"] = round(time.perf_counter() - t, 1)
    (out_dir / "fragment.json").write_text(json.dumps(fragment, indent=1))

    cpu = StaticEngine(fragment, out_dir)
    t = time.perf_counter()
    npu = StaticEngine(fragment, out_dir, SessionConfig(providers=["QNNExecutionProvider"], npu_only=True))
    report["npu_load_seconds_from_context_binaries"] = round(time.perf_counter() - t, 2)

    prompts = []
    npu_times: list[float] = []
    for text in CHAT_PROMPTS:
        ids = chat_ids(tok, text)
        ref = reference_greedy(model, ids, opts.new_tokens)
        eos = model.generation_config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        q_cpu = greedy(cpu, ids, opts.new_tokens, [], eos)
        q_npu = greedy(npu, ids, opts.new_tokens, npu_times, eos)
        tf = {"teacher_forced_qdq_cpu": teacher_forced(cpu, ids, ref, eos),
              "teacher_forced_htp": teacher_forced(npu, ids, ref, eos) if opts.htp_teacher_forced else None,
              "fp32_top2_gaps": top2_gaps(model, ids, ref)}
        prompts.append({"prompt": text, "prompt_tokens": len(ids), **tf,
                        "fp32": tok.decode(ref), "htp": tok.decode(q_npu),
                        "agree_htp_vs_fp32": agree(q_npu, ref), "agree_qdq_cpu_vs_fp32": agree(q_cpu, ref),
                        "agree_htp_vs_qdq_cpu": agree(q_npu, q_cpu)})
        print(json.dumps(prompts[-1]), flush=True)
    report["greedy"] = prompts
    report["greedy_min_agreement_htp_vs_fp32"] = min(r["agree_htp_vs_fp32"] for r in prompts)
    report["npu_seconds_per_decode_token_simulated"] = round(float(np.median(npu_times)), 2)

    ids = tok.encode(EVAL_TEXT)[: opts.max_context]
    with torch.no_grad():
        ref_logits = model(torch.tensor([ids])).logits[0].numpy()
    ppl = {"tokens": len(ids), "fp32": math.exp(nll(ref_logits, ids))}
    for name, engine in (("qdq_cpu", cpu), ("htp", npu)):
        engine.reset()
        t = time.perf_counter()
        logits = engine.forward(ids, all_logits=True)
        ppl[name] = math.exp(nll(logits, ids))
        ppl[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
        cos = (logits * ref_logits).sum(-1) / np.linalg.norm(logits, axis=-1) / np.linalg.norm(ref_logits, axis=-1)
        ppl[f"{name}_logit_cosine_mean"] = round(float(cos.mean()), 4)
    ppl["delta_htp_pct"] = round(100 * (ppl["htp"] / ppl["fp32"] - 1), 2)
    ppl["delta_qdq_cpu_pct"] = round(100 * (ppl["qdq_cpu"] / ppl["fp32"] - 1), 2)
    report["perplexity"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in ppl.items()}
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    report["out_dir"] = str(out_dir)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
