"""Export the "static" (NPU) flavour of a bundle: graphs, calibration, QDQ, checks, context binaries.

Called by exporters/export.py when the device profile's flavour is "static". The steps:
1. emit the fixed-shape prefill-chunk and decode graphs (exporters/graph/static.py);
2. for QDQ recipes, calibrate on a few hundred tokens of chat-formatted and plain text and
   quantize (exporters/qdq.py), keeping the residual stream and outlier tensors float;
3. check both graphs for NPU fit (exporters/npu_check.py; DeviceFitError names the problem);
4. when the profile prefers the QNN EP and onnxruntime-qnn is installed, compile QNN context
   binaries for the profile's HTP (exporters/context_binary.py).

`check_htp_offload` is the short on-HTP check for after the export: validating the real model
token by token on the simulated HTP is too slow here (SmolLM2-135M: ~11 s per decode step), and
the QDQ graphs run as exact QDQ on the CPU EP give the HTP's numbers to ~50 dB (measured in
benchmarks/npu_validate.py), so the logits/greedy validation runs on the CPU EP and this proves the
offload and the agreement with one short prefill window and one decode step.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk import install_hint
from edge_sdk.errors import DeviceError, DeviceFitError

# Calibration prompts: varied tasks (facts, code, lists, translation, story), so the ranges cover
# what chat users send. They differ from the validation prompts on purpose.
CALIBRATION_CHATS = (
    "Explain photosynthesis to a ten year old.",
    "How do I reverse a list in Python? Show a short example.",
    "List five fruits that are high in vitamin C.",
    "What causes the seasons on Earth?",
    "Translate 'good morning, how are you?' into Spanish and French.",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "Write a short poem about autumn leaves.",
    "What is 17 times 23? Explain the steps.",
)
# A second turn with an assistant reply in the context, as a running chat has.
CALIBRATION_TURN = (
    ("Can you recommend a book about space?",
     "Sure! 'Cosmos' by Carl Sagan is a classic that explains the universe in a clear, friendly way."),
    "Is it good for a teenager?",
)
CALIBRATION_TEXT = (
    "The history of the bicycle begins in the early nineteenth century, when inventors in Europe built "
    "wooden running machines that riders pushed along with their feet. Pedals, chains and pneumatic tyres "
    "came later, and by 1900 cycling had become a popular pastime and a cheap way to travel to work. "
    "Numbers such as 42, 3.14 and 2024 appear in text too, as do lists: apples, pears; red, green, blue. "
    "def add(a, b):\n    return a + b\n"
)


def calibration_ids(hf_tok, max_len: int) -> list[list[int]]:
    """Token sequences for calibration: chat-formatted prompts (as the device will see them) + plain text."""
    def chat(messages: list[dict]) -> list[int]:
        if not getattr(hf_tok, "chat_template", None):
            return list(hf_tok.encode("\n".join(m["content"] for m in messages)))
        out = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    seqs = [chat([{"role": "user", "content": c}]) for c in CALIBRATION_CHATS]
    (q1, a1), q2 = CALIBRATION_TURN
    seqs.append(chat([{"role": "user", "content": q1}, {"role": "assistant", "content": a1},
                      {"role": "user", "content": q2}]))
    seqs.append(list(hf_tok.encode(CALIBRATION_TEXT)))
    return [s[:max_len] for s in seqs if len(s) >= 2]


def export_static_bundle(args, weights, out_dir: Path, *, profile, recipe, max_context: int, hf_tok,
                         progress) -> dict:
    """Write the static graphs (and QNN context binaries) into `out_dir`; return manifest sections.

    Returns ``{"graph": ..., "kv_cache": ..., "quantization_details": ...}``. Raises DeviceFitError
    when a graph does not fit the NPU (shapes, operators, size).
    """
    from .graph.static import export_static

    out_dir = Path(out_dir)
    chunk = int(min(profile.prefill_chunk or 64, max_context))
    qdq_recipe = recipe.method == "qdq"
    if not qdq_recipe and recipe.name != "fp32":
        raise DeviceFitError(f"recipe {recipe.name!r} ({recipe.method}) does not apply to the static NPU flavour; "
                             "use w8a16-qdq, w4a16-qdq or fp32")
    calibration = calibration_ids(hf_tok, max_context) if qdq_recipe else None
    if calibration:
        progress.note(f"calibration: {len(calibration)} sequences, {sum(map(len, calibration))} tokens")
    fragment = export_static(args, weights, out_dir, chunk, max_context, recipe.name if qdq_recipe else "fp32",
                             calibration, target="qnn-htp", progress=progress)
    if list(profile.execution_providers[:1]) == ["QNNExecutionProvider"]:
        from edge_sdk.runtime.qnn import fp16_options

        # The float nodes (residual stream) need the HTP's fp16 mode, which QNN only enables with
        # htp_arch + soc_model; StaticEngine applies these when it opens the QDQ graphs on QNN.
        options = fp16_options(profile.htp_arch, profile.soc)
        if qdq_recipe and not options:
            raise DeviceFitError(f"device profile {profile.name!r} needs htp_arch and a known soc "
                                 "(e.g. v75 / SM8650): the static graphs run their residual stream in fp16 on the HTP")
        fragment["graph"]["qnn_options"] = options
        _compile(out_dir, fragment, profile, progress)
    details = fragment.pop("quantization")
    return {"graph": fragment["graph"], "kv_cache": fragment["kv_cache"], "quantization_details": details}


def _compile(out_dir: Path, fragment: dict, profile, progress) -> None:
    from edge_sdk.runtime import qnn

    from .context_binary import compile_bundle_graphs

    if not qnn.is_available():
        # The QDQ graphs are complete without binaries: the device compiles them at first load.
        progress.note("onnxruntime-qnn is not installed: no QNN context binaries (the phone compiles the "
                      f"QDQ graphs at load); {install_hint('npu')} to precompile them")
        return
    progress.stage(f"compiling QNN context binaries for HTP {profile.htp_arch or '(default)'}")
    section = compile_bundle_graphs(out_dir, fragment, htp_arch=profile.htp_arch, soc_model=profile.soc)
    section["soc"] = profile.soc
    progress.note("compiled in " + ", ".join(f"{k} {v:.0f} s" for k, v in section["compile_seconds"].items()))


def check_htp_offload(out_dir: Path, fragment: dict, profile, min_cosine: float | None = 0.99,
                      prompt_ids: list[int] | None = None) -> dict[str, Any]:
    """Load the bundle on the QNN HTP with CPU fallback disabled; run a short prompt and one decode step.

    Proves every node of both graphs runs on the HTP (a node that cannot makes the load fail ->
    DeviceFitError) and that the HTP's logits match the same QDQ graphs run as exact QDQ on the CPU
    EP, for the prefill window and the decode step after it. `prompt_ids` should start like a real
    prompt (a chat template's first tokens): the start token carries the model's massive "attention
    sink" activations, which is where fp16 on the HTP once went wrong while a lone token looked fine.
    `fragment` is the manifest's graph/kv_cache sections (what export_static_bundle returned). Raises
    DeviceError when onnxruntime-qnn is not installed. `min_cosine=None` reports without gating.
    """
    from edge_sdk.runtime import qnn
    from edge_sdk.runtime.providers import EXACT_QDQ, SessionConfig
    from edge_sdk.runtime.static_engine import StaticEngine

    if not qnn.is_available():
        raise DeviceError(f"cannot check HTP offload: onnxruntime-qnn is not installed ({install_hint('npu')})")
    # StaticEngine adds the bundle's qnn_options (fp16 for the float nodes) itself.
    config = SessionConfig(providers=["QNNExecutionProvider"], npu_only=True)
    start = time.perf_counter()
    try:
        htp = StaticEngine(fragment, out_dir, config)
    except DeviceError as e:
        raise DeviceFitError(f"the bundle does not run entirely on the HTP (CPU fallback disabled): {e}") from e
    load = time.perf_counter() - start
    cpu = StaticEngine(fragment, out_dir, SessionConfig(session_entries=dict(EXACT_QDQ)))
    prompt = list(prompt_ids or [1])[: max(1, htp.chunk)]
    start = time.perf_counter()
    a = htp.forward(prompt, all_logits=True)  # [n, V]: every position of the window is compared
    prefill = time.perf_counter() - start
    b = cpu.forward(prompt, all_logits=True)
    token = int(b[-1].argmax())
    start = time.perf_counter()
    a = np.concatenate([a, htp.forward([token])[None]])
    step = time.perf_counter() - start
    b = np.concatenate([b, cpu.forward([token])[None]])
    cos = [float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))) for x, y in zip(a, b)]
    worst = int(np.argmin(cos))
    if not np.isfinite(a).all() or (min_cosine is not None and cos[worst] < min_cosine):
        where = "the decode step" if worst == len(prompt) else f"prompt position {worst}"
        raise DeviceFitError(f"the HTP's logits differ from the same graphs on the CPU EP (cosine {cos[worst]:.4f} "
                             f"< {min_cosine} at {where}, over {len(cos)} positions); the HTP does not compute this "
                             "bundle faithfully")
    return {"full_offload": True, "files": htp.files, "load_seconds": round(load, 2),
            "prompt_tokens": len(prompt), "prefill_seconds": round(prefill, 2), "decode_step_seconds": round(step, 2),
            "positions_compared": len(cos), "logit_cosine_vs_cpu": round(min(cos), 5),
            "same_top1_as_cpu": bool((a.argmax(-1) == b.argmax(-1)).all())}
