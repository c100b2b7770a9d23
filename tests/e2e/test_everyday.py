"""The default CPU bundle answers everyday questions as its fp32 export does, and the docs' own prompts correctly.

The int8 activations of the former default (int4-b32, accuracy level 4) answered "What is the capital of France?"
with "L'Étoile, la Marsebeau, la France..." where fp32 says "The capital of France is Paris.": exact weights,
flipped near-ties. benchmarks/everyday.py measures the whole question set; these tests hold a subset of it to the
default's threshold, and every example prompt of README.md and docs/*.md to a correct answer."""
from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest

import edge_sdk

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# The default must give the fp32 bundle's exact greedy answer on at least this share of the everyday set.
AGREEMENT = 0.95
SUBSET = ("capital-france-q", "capital-france-name", "hello", "hi", "capital-japan", "red-planet", "two-plus-two",
          "primary-colors", "python-square", "summarize", "goodbye", "sky-blue")


def _everyday():
    if "everyday" not in sys.modules:  # registered first: its dataclasses resolve their annotations through it
        spec = importlib.util.spec_from_file_location("everyday", ROOT / "benchmarks" / "everyday.py")
        sys.modules["everyday"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["everyday"])
    return sys.modules["everyday"]


def test_the_default_agrees_with_fp32_on_everyday_questions(smollm2_bundle, smollm2_fp32_bundle):
    """A subset of benchmarks/data/everyday.jsonl (the full set: benchmarks/everyday.py, docs/benchmarks.md)."""
    ev = _everyday()
    items = ev.load_items(only=SUBSET)
    assert len(items) == len(SUBSET)
    ref = ev.answers(smollm2_fp32_bundle, items, 64, threads=2)
    ours = ev.answers(smollm2_bundle, items, 64, threads=2)
    a = ev.agreement(ref, ours, items, first_n=16)
    differ = [(i.id, r.text[:60], o.text[:60]) for i, r, o in zip(items, ref, ours) if r.ids != o.ids]
    print(f"default vs fp32 on {len(items)} everyday questions: {a['exact']} identical answers, {a['correct']} correct "
          f"(fp32: {sum(i.is_correct(r.text) for i, r in zip(items, ref))})")
    assert a["exact"] >= math.ceil(AGREEMENT * len(items)), differ
    assert a["correct"] >= sum(i.is_correct(r.text) for i, r in zip(items, ref)) - 1


# What a correct answer to each example prompt of the docs contains. A prompt the docs gain must be added here.
DOC_PROMPTS = {
    "Name the capital of France.": r"\bParis\b",
    "What is the capital of France?": r"\bParis\b",
    "What is the capital of Peru?": r"\bLima\b",
    # a greeting answered with an offer to help (int4-b32 said "I'should've been..."), however it greets back
    "Hi": r"\b(help|assist)",
    "Hello": r"\b(help|assist)",
    "Tell me a story": r"\b(story|named|once upon|there (was|lived))\b",
}
# Shown with response_format / tools, and checked so (the exact record, the exact call) in
# tests/e2e/test_structured_smollm2.py; "text" is README's placeholder for a base model's plain text.
ELSEWHERE = {"Extract the person: Ana Lima is 34 and lives in Porto.", "Set a timer for 5 minutes.", "text"}
# README's chat example: (system, first message, follow-up) and what the follow-up's answer contains. (It asked
# "What did I just say?" after "Hi!", which fp32 does not answer either: "I'm sorry for any misunderstanding...")
CHAT = ("You are concise.", "Name the capital of France.", "And of Italy?")
CHAT_ANSWER = r"\bRome\b"
# Where the docs show prompts: `--prompt "..."`, `run.sh "..."`, `.generate("...")`, `.stream("...")`,
# `.send("...")` and chat messages `"content": "..."`; placeholders (PROMPT, ...) are not prompts.
_SHOWN = re.compile(r'(?:--prompt |run\.sh |\.generate\(|\.stream\(|\.send\(|"content": )"([^"]+)"')


def _doc_prompts() -> set[str]:
    found = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found |= {p for p in _SHOWN.findall(doc.read_text(encoding="utf-8")) if not re.fullmatch(r"[A-Z_.]+|\.\.\.", p)}
    return found


def test_every_prompt_the_docs_show_has_an_expected_answer():
    shown = _doc_prompts()
    assert "What is the capital of France?" in shown and "Name the capital of France." in shown  # the scan works
    missing = shown - set(DOC_PROMPTS) - set(CHAT) - ELSEWHERE
    assert not missing, f"docs show prompts this test does not check: {sorted(missing)}; add them to DOC_PROMPTS"


@pytest.mark.parametrize("prompt", sorted(DOC_PROMPTS))
def test_the_default_answers_the_docs_prompts_correctly(smollm2_bundle, prompt):
    model = edge_sdk.load(smollm2_bundle)
    answer = model.generate(prompt, max_new_tokens=64)
    assert re.search(DOC_PROMPTS[prompt], answer, re.IGNORECASE | re.DOTALL), answer


def test_the_default_answers_the_readme_chat_example(smollm2_bundle):
    chat = edge_sdk.load(smollm2_bundle).chat(system=CHAT[0])
    chat.send(CHAT[1], max_new_tokens=64)
    answer = chat.send(CHAT[2], max_new_tokens=64)
    assert re.search(CHAT_ANSWER, answer, re.IGNORECASE), answer
