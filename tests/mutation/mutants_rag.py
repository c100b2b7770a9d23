"""Mutants of grounded answers' abstention ("Not in your documents."): the thresholds and the support check
must each be held by a test (tests/rag/test_abstention.py, on the fake embedder and a scripted decoder)."""
from __future__ import annotations

from .mutants import Mutant

T = "tests/rag/test_abstention.py::"

MUTANTS = (
    Mutant("rag abstention ignores the retrieval threshold", "runtime/rag/evidence.py",
           "    if retrieval < policy.min_retrieval:\n", "    if False:\n",
           (T + "test_a_question_nothing_matches_is_not_in_your_documents_without_asking_the_model",
            T + "test_the_thresholds_decide", T + "test_the_decision_rule")),
    Mutant("rag abstention ignores the support threshold", "runtime/rag/evidence.py",
           "    if support is not None and support < policy.min_support:\n",
           "    if support is not None and support < 0.0:\n",
           (T + "test_a_figure_copied_from_an_unrelated_sentence_is_not_in_your_documents",
            T + "test_the_thresholds_decide", T + "test_prepare_then_judge_is_what_ask_does")),
    Mutant("rag support check off after generating", "runtime/rag/grounded.py",
           "    reason = _evidence.decide(retrieval, support, policy) if policy is not None else None\n",
           "    reason = _evidence.decide(retrieval, None, policy) if policy is not None else None\n",
           (T + "test_a_figure_copied_from_an_unrelated_sentence_is_not_in_your_documents",
            T + "test_prepare_then_judge_is_what_ask_does")),
    Mutant("rag support counts the question's own words", "runtime/rag/evidence.py",
           "        new = content_words(answer) - self.question_words\n", "        new = content_words(answer)\n",
           (T + "test_an_answer_that_only_repeats_the_question_is_not_supported",
            T + "test_evidence_per_source_is_the_best_backing_sentence")),
)
