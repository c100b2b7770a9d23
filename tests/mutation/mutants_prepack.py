"""Mutants of the packed-weights cache (issue 26 item 3): an entry that is trusted, reused or never used."""
from __future__ import annotations

from .mutants import Mutant

PACKED = "tests/runtime/test_packed_weights.py"

MUTANTS = (
    Mutant("a packed entry is trusted without checking its hashes", "runtime/packed.py",
           "            if path.is_symlink() or path.stat().st_size != info[\"bytes\"] "
           "or sha256_file(path) != info[\"sha256\"]:",
           "            if path.is_symlink():",
           (f"{PACKED}::test_a_corrupt_entry_is_detected_and_rebuilt",)),
    Mutant("the packed entry's key ignores the onnxruntime build", "runtime/packed.py",
           "        \"onnxruntime\": [ort.__version__, ort.get_device(), getattr(ort, \"__file__\", \"\")],",
           "        \"onnxruntime\": [],",
           (f"{PACKED}::test_a_new_onnxruntime_never_loads_the_old_entry",)),
    Mutant("the session opens the bundle's graph, not the cached one", "runtime/providers.py",
           "            path = graph.path\n",
           "",
           (f"{PACKED}::test_second_load_maps_the_packed_file_and_logits_are_identical",)),
    Mutant("the cache is never trimmed", "runtime/packed.py",
           "        _evict(root, key, max_entries)\n",
           "",
           (f"{PACKED}::test_the_cache_keeps_at_most_max_entries_and_sweeps_dead_builds",)),
)
