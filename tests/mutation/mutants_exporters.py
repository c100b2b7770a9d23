"""Mutants of the exporter's structure (issue 29) and of base models, exported and run on plain text (issue 25)."""
from __future__ import annotations

from .mutants import Mutant

BASE = "tests/exporters/test_base_model.py"

MUTANTS = (
    Mutant("validation imports the test fixtures", "exporters/validate.py",
           "from .references import hf_greedy\n", "from .references import hf_greedy\nfrom . import testing  # noqa: F401\n",
           ("tests/exporters/test_import_graph.py::test_exporters_have_no_import_cycle",
            "tests/exporters/test_import_graph.py::test_validation_does_not_import_the_test_fixtures")),
    Mutant("a base model is validated on chat prompts", "exporters/validate.py",
           "(_chat_ids if model.template is not None else _plain_ids)(model, hf_tok)", "_chat_ids(model, hf_tok)",
           (f"{BASE}::test_the_bundle_is_validated_on_plain_text",)),
    Mutant("a base model's str prompt needs raw=True", "runtime/model.py",
           "        if raw or (self.template is None and isinstance(prompt, str)):", "        if raw:",
           (f"{BASE}::test_the_api_continues_plain_text_as_transformers_does",)),
    Mutant("plain-text prompts lose the BOS the model asks for", "runtime/model.py",
           '            if self.manifest["tokenizer"].get("add_bos") and bos is not None:', "            if False:",
           (f"{BASE}::test_the_bundle_is_validated_on_plain_text",)),
    Mutant("edge-sdk run sends a base model's prompt as a chat turn", "edge_sdk/cli/run.py",
           "    raw = args.raw or model.template is None", "    raw = args.raw",
           (f"{BASE}::test_edge_sdk_run_takes_plain_text_without_a_flag",)),
    Mutant("the server renders a base model's chat without a template", "runtime/server/app.py",
           "                if model.template is None:\n                    raise ApiError(400,",
           "                if False:\n                    raise ApiError(400,",
           ("tests/server/test_base_model.py::test_completions_serve_plain_text_and_chat_is_a_clear_400",)),
)
