"""Mutants of issue 11's probes re-checked in issue 24 (benchmarks/probes_round1.py): the ones that had
regressed or had no test, each undone in the one place that holds it."""
from __future__ import annotations

from .mutants import Mutant

MUTANTS = (
    Mutant("probes: an empty list of messages is answered", "runtime/model.py",
           "        if not prompt:  # \"\" or no messages", "        if prompt == \"\":  # \"\" or no messages",
           ("tests/runtime/test_determinism_and_threads.py::test_bad_prompts_name_the_problem",)),
    Mutant("probes: export --help's recipe column back to 14 characters", "edge_sdk/cli/export.py",
           "    width = max(len(name) for name in RECIPES) + 1", "    width = 14",
           ("tests/unit/test_cli_input.py::test_export_help_lists_every_recipe",)),
    Mutant("probes: the compact tokenizer copy skips tokenizer.json's checks", "runtime/tokenizer/core.py",
           "        check_spec(spec, vocab_checked=True)", "        pass",
           ("tests/unit/test_tokenizer_compact.py::test_a_compact_copy_gets_the_checks_of_a_tokenizer_json",)),
)
