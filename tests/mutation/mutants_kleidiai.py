"""Mutants of the arm64 KleidiAI switch (issue 26 item 5): each route by which a profile's `kleidiai: false`
reaches onnxruntime's SessionOptions, and the profile check."""
from __future__ import annotations

from .mutants import Mutant

OPT = "tests/runtime/test_kleidiai_option.py"

MUTANTS = (
    Mutant("kleidiai: the session never gets mlas.disable_kleidiai", "runtime/providers.py",
           "return {**(DISABLE_KLEIDIAI if config.kleidiai is False else {}), **config.session_entries}",
           "return dict(config.session_entries)",
           (f"{OPT}::test_arm64_cpu_profiles_turn_kleidiai_off_in_the_session",
            f"{OPT}::test_the_manifest_carries_it_when_no_profile_is_named")),
    Mutant("kleidiai: a named profile's choice is dropped at load", "runtime/model.py",
           "                   kleidiai=profile.kleidiai)", "                   )",
           (f"{OPT}::test_arm64_cpu_profiles_turn_kleidiai_off_in_the_session",
            f"{OPT}::test_a_device_builds_profile_file_turns_it_off")),
    Mutant("kleidiai: the manifest's choice is ignored", "runtime/model.py",
           "kleidiai=dev.get(\"kleidiai\"))", "kleidiai=None)",
           (f"{OPT}::test_the_manifest_carries_it_when_no_profile_is_named",)),
    Mutant("kleidiai: the export does not record it", "exporters/export.py",
           '**({"kleidiai": profile.kleidiai} if profile.kleidiai is not None else {})}', "}",
           (f"{OPT}::test_export_for_an_arm64_profile_records_it",)),
    Mutant("kleidiai: opting in still turns it off", "runtime/providers.py",
           "DISABLE_KLEIDIAI if config.kleidiai is False else {}", "DISABLE_KLEIDIAI if not config.kleidiai else {}",
           (f"{OPT}::test_x86_and_unset_leave_onnxruntimes_choice",)),
    Mutant("kleidiai: an x86 profile may set it", "devices/__init__.py",
           '    if data.get("kleidiai") is not None and data["cpu_arch"] != "arm64":', "    if False:",
           (f"{OPT}::test_a_profile_is_refused_kleidiai_off_arm64",)),
)
