"""How close the student is to the teacher, before and after distillation, on the held-out prompts.

- exact match: the student's greedy answer equals the teacher's (whitespace at the ends ignored)
- token F1: overlap of their words (SQuAD's measure: lower case, punctuation and articles ignored)
- escalation rate: the share of prompts whose answer's confidence is below the router's threshold, the
  confidence measured as the device router measures it (runtime/hybrid's Confidence: the geometric mean
  of the chosen tokens' probabilities under the raw logits), decoded as the device decodes (greedy, the
  bundle's repetition penalty, runtime/sampling's own processor)
"""
from __future__ import annotations

import inspect
import re
import string
from collections import Counter
from typing import Any

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def exact_match(answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


def token_f1(answer: str, reference: str) -> float:
    got, want = normalize(answer), normalize(reference)
    if not got or not want:
        return float(got == want)
    same = sum((Counter(got) & Counter(want)).values())
    if not same:
        return 0.0
    precision, recall = same / len(got), same / len(want)
    return 2 * precision * recall / (precision + recall)


def greedy(model, prompt_ids: list[int], *, max_new_tokens: int, eos_ids: list[int],
           repetition_penalty: float = 1.0) -> tuple[list[int], float]:
    """(new token ids, confidence score) of a greedy decode of the transformers `model`, as the device
    decodes: the runtime's logits processor, argmax, and the router's Confidence on the raw logits."""
    import torch

    from ...runtime import sampling
    from ...runtime.hybrid import Confidence

    # transformers 5 renamed past_key_values to cache (the old name warns); older releases know only the old one
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    key = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    process = sampling.make_logits_processor(repetition_penalty, prompt_tokens=len(prompt_ids))
    confidence = Confidence()
    seen, out = list(prompt_ids), []
    past, feed = None, torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(max_new_tokens):
            result = model(input_ids=feed, use_cache=True, **{key: past})
            past = getattr(result, key)
            raw = result.logits[0, -1].float().numpy()  # [vocab]
            logits = process(raw.copy(), seen) if process is not None else raw
            token = int(np.argmax(logits))
            confidence.observe(raw, token)
            if token in eos_ids:
                break
            out.append(token)
            seen.append(token)
            feed = torch.tensor([[token]])
    return out, confidence.score


def evaluate(model, device_model, examples, *, threshold: float, max_new_tokens: int,
             repetition_penalty: float, system: str | None = None) -> dict[str, Any]:
    """The student's greedy answers to `examples` (optionally under a system prompt) against the teacher's."""
    rows = []
    for ex in examples:
        messages = ([{"role": "system", "content": system}] if system else []) + ex.chat
        ids = device_model.encode_prompt(messages)
        tokens, score = greedy(model, ids, max_new_tokens=max_new_tokens, eos_ids=list(device_model.eos_token_ids),
                               repetition_penalty=repetition_penalty)
        text = device_model.tokenizer.decode(tokens, skip_special_tokens=True)
        rows.append({"answer": text, "teacher": ex.answer, "exact": exact_match(text, ex.answer),
                     "f1": round(token_f1(text, ex.answer), 4), "confidence": round(score, 4),
                     "escalates": score < threshold})
    return summary(rows, threshold)


def summary(rows: list[dict], threshold: float) -> dict[str, Any]:
    n = len(rows)
    return {"prompts": n, "exact_match": round(sum(r["exact"] for r in rows) / n, 4),
            "token_f1": round(sum(r["f1"] for r in rows) / n, 4),
            "escalation_rate": round(sum(r["escalates"] for r in rows) / n, 4),
            "mean_confidence": round(sum(r["confidence"] for r in rows) / n, 4),
            "threshold": threshold, "answers": rows}


def table(report: dict[str, Any]) -> str:
    """The before/after figures as a short plain-text table."""
    before, after = report["before"], report["after"]
    lines = [f"{'held-out prompts: ' + str(before['prompts']):<28}{'before':>10}{'after':>10}"]
    for key, label in (("exact_match", "exact match"), ("token_f1", "token F1"),
                       ("escalation_rate", f"escalation rate (< {before['threshold']})"),
                       ("mean_confidence", "mean confidence")):
        lines.append(f"{label:<28}{before[key]:>10.3f}{after[key]:>10.3f}")
    loss = report["training"]["held_out_loss"]
    lines.append(f"{'held-out loss':<28}{loss[0]:>10.3f}{min(loss):>10.3f}")
    bake = report.get("baking")
    if bake and bake.get("ttft_ms"):
        t = bake["ttft_ms"]
        lines.append(f"{'TTFT ms (long prompt -> baked)':<28}{t['with_system']:>10.1f}{t['baked']:>10.1f}")
        lines.append(f"{'baked vs long prompt (exact)':<28}{'':>10}{bake['agreement']['exact_match']:>10.3f}")
    return "\n".join(lines)
