"""Deliberate breakages that the suite must catch: each one is a text edit of the source and the tests that
must then fail. A mutant whose `old` text is gone from the source fails the check too, so this list
cannot silently rot when the code changes.

A test suite that stays green with the top-p filter switched off does not test top-p.

Each area keeps its mutants in a module of its own (`mutants_<area>.py`, a tuple `MUTANTS` of the same
`Mutant`), so work on different areas does not edit one list; `ALL` gathers this file's and theirs.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # repository path
    old: str  # must occur exactly once
    new: str
    tests: tuple[str, ...]  # what must fail: the tests aimed at this behaviour (node ids keep the check quick)


MUTANTS = (
    Mutant("sampler ignores top_p", "runtime/sampling.py",
           "    if top_p < 1.0:\n        steps.append(", "    if False:\n        steps.append(",
           ("tests/runtime/test_sampling_public.py::test_filters_keep_what_transformers_keeps",)),
    Mutant("sampler ignores min_p", "runtime/sampling.py",
           "    if min_p > 0.0:\n        steps.append(", "    if False:\n        steps.append(",
           ("tests/runtime/test_sampling_public.py::test_filters_keep_what_transformers_keeps",)),
    Mutant("sampler ignores top_k", "runtime/sampling.py",
           "    if top_k > 0:\n        steps.append(", "    if False:\n        steps.append(",
           ("tests/runtime/test_sampling_public.py::test_filters_keep_what_transformers_keeps",)),
    Mutant("sampler ignores temperature", "runtime/sampling.py",
           "    if temperature != 1.0:\n        steps.append(", "    if False:\n        steps.append(",
           ("tests/runtime/test_sampling_public.py::test_temperature_shapes_the_distribution",)),
    Mutant("repetition penalty ignored", "runtime/sampling.py",
           "    if repetition_penalty != 1.0:\n        steps.append(", "    if False:\n        steps.append(",
           ("tests/runtime/test_sampling_public.py::test_repetition_penalty_changes_the_greedy_choice_as_transformers_does",)),
    Mutant("manifest format not checked", "runtime/bundle/manifest.py",
           'if manifest.get("format") != BUNDLE_FORMAT:', "if False:",
           ("tests/runtime/test_bundle_trust.py::test_malformed_manifests",)),
    Mutant("manifest schema_version not checked", "runtime/bundle/manifest.py",
           "if version != SCHEMA_VERSION or isinstance(version, bool):", "if False:",
           ("tests/runtime/test_bundle_trust.py::test_malformed_manifests",)),
    Mutant("file size not checked", "runtime/bundle/files.py",
           'if st.st_size != info["bytes"]:', "if False:",
           ("tests/runtime/test_bundle_trust.py::test_truncated_and_modified_files",)),
    Mutant("file hash not checked", "runtime/bundle/files.py",
           'if sha256_file(root / name) != info["sha256"]:', "if False:",
           ("tests/runtime/test_bundle_trust.py::test_truncated_and_modified_files",)),
    Mutant("'..' allowed in bundle file names", "runtime/bundle/files.py",
           'any(p in ("..", ".", "") for p in name.split("/"))', "False",
           ("tests/runtime/test_bundle_trust.py::test_graph_outside_the_bundle",)),
    Mutant("symlinks followed in bundles", "runtime/bundle/files.py",
           "        if stat.S_ISLNK(st.st_mode):\n            raise", "        if False:\n            raise",
           ("tests/runtime/test_bundle_trust.py::test_chat_template_symlink_to_the_environment",)),
    Mutant("KV-cache rewind off by one", "runtime/kv_cache.py",
           "        self.offset -= n", "        self.offset -= max(0, n - 1)",
           ("tests/runtime/test_kv_cache.py",)),
    Mutant("prompt reuse ignores how the cache was computed", "runtime/generate.py",
           "min(common_prefix(self.tokens, ids), self.clean, len(ids) - MIN_PREFILL_ROWS)",
           "min(common_prefix(self.tokens, ids), len(ids) - 1)",
           ("tests/runtime/test_determinism_and_threads.py::test_prompt_logits_do_not_depend_on_the_cache",)),
    Mutant("one Model generates in two threads at once", "runtime/model.py",
           "        with self._lock:\n            self._owner = me", "        if True:\n            self._owner = None",
           ("tests/runtime/test_determinism_and_threads.py::test_one_thread_cannot_interleave_two_streams",)),
    Mutant("chat template budget not spent", "runtime/jinja_sandbox.py",
           "        self.steps += n\n", "        return\n",
           ("tests/unit/test_chat_template_budget.py::test_hostile_templates_are_stopped",)),
    Mutant("roles not checked", "runtime/chat_template.py",
           "if not _ROLE.match(role) or role not in roles:", "if False:",
           ("tests/unit/test_chat_template_budget.py::test_roles_are_data_not_template_text",)),
    Mutant("catastrophic regexes accepted", "runtime/tokenizer/safety.py",
           "                if not _one_char(inner):", "                if False:",
           ("tests/unit/test_tokenizer_safety.py::test_hostile_patterns_are_refused",)),
    Mutant("CPU fallback allowed on a QNN session", "runtime/qnn.py",
           '        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")', "        pass",
           ("tests/npu/test_npu_only.py::test_an_op_the_htp_lacks_fails_to_load_with_npu_only",)),
    Mutant("static engine does not clip pad positions", "runtime/static_engine.py",
           "np.minimum(np.arange(off, off + S), C - 1, out=g.pos[0])", "g.pos[0] = np.arange(off, off + S)",
           ("tests/runtime/test_static_engine.py::test_a_window_that_runs_past_the_end_of_the_context",)),
    Mutant("export --force replaces any folder", "exporters/staging.py",
           "            if not is_previous_output(output, marker, fmt):", "            if False:",
           ("tests/exporters/test_bad_input.py::test_force_never_replaces_a_folder_that_is_not_a_bundle",)),
    Mutant("GGUF counts trusted", "exporters/gguf/header.py",
           "        if n < 0 or n > self.left:", "        if n < 0:",
           ("tests/exporters/test_gguf_untrusted.py::test_a_tiny_file_declaring_a_2_to_the_40_array",)),
)


def _gathered() -> tuple[Mutant, ...]:
    out = list(MUTANTS)
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith("mutants_"):
            out += importlib.import_module(f"{__package__}.{info.name}").MUTANTS
    names = [m.name for m in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"mutant names must be unique: {dupes}")
    return tuple(out)


ALL = _gathered()
