"""Mutants for the first-hour fixes: sampling defaults, chat turns that tokenize once and settle their reply,
the tokenizer's fast path."""
from __future__ import annotations

from .mutants import Mutant

MUTANTS = (
    Mutant("prompt ids reuse a segment whose text grew", "runtime/prompt_ids.py",
           "and segments[keep] == last_segments[keep]:",
           "and segments[keep][0].startswith(last_segments[keep][0]):",
           ("tests/runtime/test_prompt_ids.py::test_incremental_ids_equal_the_full_encode",)),
    Mutant("a chat turn encodes the whole conversation again", "runtime/model.py",
           "        return self._prompt_ids(messages)\n",
           "        return self.model.encode_prompt(messages)\n",
           ("tests/runtime/test_prompt_ids.py::test_a_session_turn_tokenizes_only_its_new_text",)),
    Mutant("settle trusts the one-row results of the reply", "runtime/model.py",
           "        return decoder.prefill(ids)[1]\n",
           "        decoder.clean = len(decoder.tokens)\n        return 1\n",
           ("tests/runtime/test_prompt_ids.py::test_settle_runs_the_reply_now_and_the_answer_does_not_change",)),
    Mutant("the fast tokenizer still builds the pure BPE model", "runtime/tokenizer/core.py",
           "            if fast is None:\n                self._model = _model(",
           "            if True:\n                self._model = _model(",
           ("tests/unit/test_tokenizer.py::test_the_fast_backend_reads_a_file_the_pure_build_refuses",)),
    Mutant("export ignores the model's generation_config.json", "exporters/generation.py",
           "    if not any(config.get(k) is not None for k in SAMPLING_FIELDS):",
           "    if True:",
           ("tests/exporters/test_generation_defaults.py::test_the_section_is_what_transformers_would_sample_with",)),
    Mutant("generate ignores the bundle's sampling defaults", "runtime/model.py",
           "        s = resolve_defaults(self.defaults, known)",
           "        s = resolve_defaults({}, known)",
           ("tests/exporters/test_generation_defaults.py::test_sampling_defaults_round_trip_into_generate",)),
    Mutant("greedy defaults to no repetition penalty", "runtime/generation_defaults.py",
           '    "repetition_penalty": 1.15,', '    "repetition_penalty": 1.0,',
           # the export writes the defaults into the manifest, and the harness reuses one clean export: the
           # export-side test sees the mutated default, the runtime one checks it reaches generate()
           ("tests/exporters/test_generation_defaults.py::test_no_sampling_choice_gets_edge_sdk_defaults",
            "tests/runtime/test_decode_loop.py::test_default_sampling_equals_transformers_with_the_same_settings")),
    Mutant("speculative decoding drops the repetition penalty", "runtime/model.py",
           'processor=sampling.make_logits_processor(s["repetition_penalty"]))',
           "processor=None)",
           ("tests/runtime/test_decode_loop.py::test_speculative_option_gives_the_greedy_text",)),
    Mutant("the CLI's sampling options default to fixed values", "edge_sdk/cli/_common.py",
           '"repetition_penalty": args.repetition_penalty,',
           '"repetition_penalty": args.repetition_penalty or 1.0,',
           ("tests/unit/test_cli_run_options.py::test_plain_and_json",)),
)
