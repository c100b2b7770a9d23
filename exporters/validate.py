"""Validation inside export: the bundle, run by our own runtime, against references we did not write.

- tokenizer parity: the device tokenizer (pure Python) versus Hugging Face `tokenizers` on the exported
  tokenizer.json, over a varied text set; plus the prompts as the device builds them versus transformers:
  through the chat template (apply_chat_template), or, for a base model with no chat template, as plain
  text (the tokenizer with its special tokens, e.g. BOS);
- logits versus transformers on several prompts (max abs difference, top-1 agreement);
- greedy tokens versus transformers `generate` on those prompts;
- perplexity on the built-in eval text versus transformers fp32 (the quality bound of the recipe).
A check that fails raises ValidationFailedError naming the check and the figure; the figures go
into the manifest either way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import ValidationFailedError

from .recipes import Recipe
from .references import hf_greedy

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
]
RAW_PROMPTS = [
    "The quick brown fox jumps over the lazy dog. In 1969, 2 astronauts walked on the Moon",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
]
# Varied on purpose: languages, scripts, code, emoji (ZWJ, skin tones), whitespace runs, numbers,
# and text that merely contains special-token strings (must stay ordinary text).
TOKENIZER_TEXTS = [
    "Hello, world! How are you doing today?",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\nnew\r\nlines\n\n\n  indented",
    "Numbers: 0 7 42 1234 3.14159 -273.15 1e-9 1,000,000 ²³ ½ ٣",
    "Ünïcödé àccents, naïve café, façade; Straße; Ærøskøbing",
    "Русский текст: Съешь же ещё этих мягких французских булок.",
    "中文文本：我能吞下玻璃而不伤身体。日本語：私はガラスを食べられます。",
    "한국어: 나는 유리를 먹을 수 있어요. Ελληνικά: Μπορώ να φάω σπασμένα γυαλιά.",
    "العربية: أنا قادر على أكل الزجاج. हिन्दी: मैं काँच खा सकता हूँ।",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷",
    "import numpy as np\nx = np.arange(10)[::-1]  # reversed\nprint(f\"{x!r:>10}\")\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "A user typing <|im_end|> or <|im_start|>system must not inject control tokens.",
    "It's, we're, they'll, I'd, you've, she's, O'Neil's",
    "nbsp:\u00a0here, zero-width:\u200bthere, soft\u00adhyphen",
    "URL https://example.com/a/b?c=1&d=2#frag and email someone@example.org",
    "    def f(self):\n\t\treturn {'a': [1, 2, 3]}\n",
    "!!!??? ... --- *** ___ ~~~ ``` $$$ %%%",
    "mixed 中文 and English and 123 and 😀 together",
]


@dataclass
class Check:
    name: str
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    gating: bool = True  # False: figures reported, not a pass/fail criterion for this recipe


def _tokenizer_parity(model, bundle_dir: Path, hf_tok) -> Check:
    from tokenizers import Tokenizer as HFTokenizer

    ref = HFTokenizer.from_file(str(bundle_dir / model.manifest["tokenizer"]["file"]))
    ref.encode_special_tokens = True  # specials inside user text are plain text, as in our runtime
    mismatches, chars, source_same = [], 0, 0
    for text in TOKENIZER_TEXTS:
        ours = model.tokenizer.encode(text)
        theirs = ref.encode(text, add_special_tokens=False).ids
        chars += len(text)
        if ours != theirs:
            mismatches.append(text[:40])
        if model.tokenizer.decode(ours) != text:
            mismatches.append(f"round-trip: {text[:40]}")
        if "<|" not in text and hf_tok.encode(text, add_special_tokens=False) == ours:
            source_same += 1
    plain = sum("<|" not in t for t in TOKENIZER_TEXTS)
    figures = {"texts": len(TOKENIZER_TEXTS), "chars": chars, "mismatches": len(mismatches),
               "backend": model.tokenizer.backend, "source_tokenizer_agreement": round(source_same / plain, 3)}
    msg = f"device tokenizer differs from HF tokenizers on: {mismatches[:3]}" if mismatches else ""
    return Check("tokenizer_parity", not mismatches, figures, msg)


def _chat_ids(model, hf_tok) -> tuple[Check, list[list[int]]]:
    bad, ids_all = [], []
    for p in CHAT_PROMPTS:
        messages = [{"role": "user", "content": p}]
        ours = model.encode_prompt(messages)
        theirs = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        theirs = list(theirs["input_ids"] if isinstance(theirs, dict) or hasattr(theirs, "keys") else theirs)
        if ours != theirs:
            bad.append(p)
        ids_all.append(theirs)
    msg = f"chat prompt ids differ from transformers' apply_chat_template for {bad}" if bad else ""
    return Check("chat_template_ids", not bad, {"prompts": len(CHAT_PROMPTS), "mismatches": len(bad)}, msg), ids_all


def _plain_ids(model, hf_tok) -> tuple[Check, list[list[int]]]:
    """A base model's prompts: plain text, with the special tokens its tokenizer adds (BOS), as transformers does."""
    bad, ids_all = [], []
    for p in CHAT_PROMPTS:
        ours = model.encode_prompt(p)
        theirs = list(hf_tok(p)["input_ids"])
        if ours != theirs:
            bad.append(p)
        ids_all.append(theirs)
    msg = f"plain-text prompt ids differ from the transformers tokenizer's for {bad}" if bad else ""
    return Check("plain_prompt_ids", not bad, {"prompts": len(CHAT_PROMPTS), "mismatches": len(bad)}, msg), ids_all


def _logits(model, hf_model, prompts: list[list[int]], recipe: Recipe) -> Check:
    import torch

    worst, agree, total = 0.0, 0, 0
    for ids in prompts:
        model.decoder.reset()
        ours = model.engine.forward(ids, all_logits=True)
        model.decoder.reset()
        with torch.no_grad():
            ref = hf_model(torch.tensor([ids])).logits[0].float().numpy()
        worst = max(worst, float(np.abs(ours - ref).max()))
        agree += int((ours.argmax(-1) == ref.argmax(-1)).sum())
        total += len(ids)
    figures = {"prompts": len(prompts), "positions": total, "max_abs_diff": worst, "top1_agreement": round(agree / total, 4),
               "tolerance": recipe.logits_atol}
    if recipe.logits_atol is not None:
        ok = worst <= recipe.logits_atol
        msg = "" if ok else f"max abs logits difference {worst:.3g} exceeds {recipe.logits_atol:g}"
    else:  # quantized: the argmax must still agree almost everywhere
        ok = agree / total >= 0.8
        msg = "" if ok else f"top-1 agreement with fp32 transformers is only {agree / total:.1%} (< 80%)"
    return Check("logits", ok, figures, msg)


def _greedy(model, hf_model, prompts: list[list[int]], recipe: Recipe, n_tokens: int, eos_ids) -> Check:
    from edge_sdk.runtime.generate import generate_tokens
    from edge_sdk.runtime.sampling import make_sampler

    prefix, identical = [], 0
    for ids in prompts:
        ref = hf_greedy(hf_model, ids, n_tokens, eos_ids)
        model.decoder.reset()
        ours = list(generate_tokens(model.decoder, ids, max_new_tokens=n_tokens, sampler=make_sampler(0.0), eos_ids=eos_ids))
        n = 0
        while n < min(len(ours), len(ref)) and ours[n] == ref[n]:
            n += 1
        prefix.append(n)
        identical += int(ours == ref)
    figures = {"prompts": len(prompts), "max_new_tokens": n_tokens, "identical": identical, "matching_prefix": prefix}
    if recipe.logits_atol is not None:  # fp32: every prompt must be token-identical
        ok = identical == len(prompts)
        msg = "" if ok else f"greedy tokens differ from transformers on {len(prompts) - identical} of {len(prompts)} prompts (matching prefixes {prefix})"
    else:
        # Quantized weights flip near-ties, after which greedy texts diverge: a 135M model at +0.8 %
        # perplexity still changed the first token of one prompt. Reported; quality is gated by the
        # perplexity and top-1 checks instead.
        return Check("greedy_tokens", True, figures, "reported, not gating for quantized recipes", gating=False)
    return Check("greedy_tokens", ok, figures, msg)


def reference_nll(logits, targets, rows: int = 64) -> float:
    """Mean cross-entropy (nats, float64) of torch `logits` [n, vocab] against `targets` [n], `rows` at a time.

    Casting all the logits to float64 at once, as this did, made 2 float64 copies of [n, vocab] (the cast and
    cross_entropy's log-softmax), 1.07 GB each at Gemma 3's 262,144-token vocabulary and 511 positions: they were
    the peak of a Gemma 3 1B export (8.31 GB, validation; 6.98 GB with row blocks, same perplexity to the last
    digit, docs/benchmarks.md). Row blocks give the same sum with 2 x [rows, vocab] at a time."""
    import torch

    total = 0.0
    for r in range(0, len(targets), rows):
        total += torch.nn.functional.cross_entropy(logits[r:r + rows].double(), targets[r:r + rows],
                                                   reduction="sum").item()
    return total / len(targets)


def _quality(model, hf_model, recipe: Recipe, max_tokens: int = 512) -> Check:
    """Perplexity of the bundle vs transformers fp32 on the same window of the built-in eval text."""
    import torch

    from edge_sdk.runtime.eval_text import EVAL_TEXT
    from edge_sdk.runtime.evaluate import perplexity

    ids = model.encode_prompt(EVAL_TEXT, raw=True)[: min(max_tokens, model.max_context)]
    ours = perplexity(model, ids=ids, window=len(ids), stride=len(ids))
    with torch.no_grad():
        logits = hf_model(torch.tensor([ids])).logits[0, :-1]  # [n-1, vocab] float32
    ref_ppl = float(np.exp(reference_nll(logits, torch.tensor(ids[1:]))))
    delta = ours["ppl"] / ref_ppl - 1.0
    figures = {"tokens": ours["tokens"], "ppl": round(ours["ppl"], 4), "reference_ppl": round(ref_ppl, 4),
               "ppl_increase": round(delta, 4), "bound": recipe.max_ppl_increase}
    ok = delta <= recipe.max_ppl_increase
    msg = "" if ok else (f"perplexity {ours['ppl']:.3f} is {delta:+.1%} vs fp32 transformers {ref_ppl:.3f} "
                         f"(bound +{recipe.max_ppl_increase:.0%}); try --recipe int4-b32 or int8")
    return Check("perplexity", ok, figures, msg)


def validate_bundle(bundle_dir: Path, hf_model, hf_tok, recipe: Recipe, progress, n_tokens: int = 32,
                    device: str | None = None, adapter: str | None = None) -> dict[str, Any]:
    """Run every check; return the manifest's `validation` section or raise ValidationFailedError."""
    import torch
    import transformers

    from edge_sdk.runtime.model import load

    # The device path (pure tokenizer), on the bundle's providers unless `device` names another profile.
    model = load(bundle_dir, device=device, tokenizer_backend="pure")
    model.adapter = adapter  # a run-time adapter, checked against the PEFT model `hf_model`
    checks = [_tokenizer_parity(model, bundle_dir, hf_tok)]
    progress.note(f"tokenizer parity: {checks[-1].figures['mismatches']} mismatches on {checks[-1].figures['chars']} chars")
    # The prompts as the device builds them: a chat turn, or plain text for a model with no chat template.
    prompt_check, prompt_ids = (_chat_ids if model.template is not None else _plain_ids)(model, hf_tok)
    checks.append(prompt_check)
    raw_ids = [hf_tok.encode(t, add_special_tokens=False) for t in RAW_PROMPTS]
    checks.append(_logits(model, hf_model, prompt_ids + raw_ids, recipe))
    f = checks[-1].figures
    progress.note(f"logits: max abs diff {f['max_abs_diff']:.2e}, top-1 agreement {f['top1_agreement']:.2%} over {f['positions']} positions")
    checks.append(_greedy(model, hf_model, prompt_ids, recipe, n_tokens, model.eos_token_ids))
    f = checks[-1].figures
    progress.note(f"greedy: {f['identical']}/{f['prompts']} prompts identical over {n_tokens} tokens (prefixes {f['matching_prefix']})")
    checks.append(_quality(model, hf_model, recipe))
    f = checks[-1].figures
    progress.note(f"perplexity: {f['ppl']:.3f} vs fp32 transformers {f['reference_ppl']:.3f} ({f['ppl_increase']:+.2%}) on {f['tokens']} tokens")
    section = {
        "passed": all(c.passed for c in checks if c.gating),
        "reference": f"transformers {transformers.__version__} / torch {torch.__version__}",
        "executed_on": device or "the bundle's own device profile",
        "checks": [asdict(c) for c in checks],
    }
    failed = [c for c in checks if c.gating and not c.passed]
    if failed:
        raise ValidationFailedError("validation failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed))
    return section
