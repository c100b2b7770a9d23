"""Mutants of the streaming export (issue 26): weights that stay in memory."""
from __future__ import annotations

from .mutants import Mutant

STREAM = "tests/exporters/test_streaming.py"

MUTANTS = (
    Mutant("a GGUF's blocks are all decoded up front", "exporters/gguf/weights.py",
           "        self._taken[name] = (raw, qtype, shape, order)",
           "        self._taken[name] = (raw, qtype, shape, order)\n"
           "        self.__dict__.setdefault('_held', []).append(decode(raw, qtype, shape))",
           (f"{STREAM}::test_blocks_are_checked_and_emitted_one_matrix_at_a_time",)),
    Mutant("the graph keeps its weights in memory", "exporters/graph/builder.py",
           "        if self._data is not None and array.nbytes >= EXTERNAL_MIN_BYTES:",
           "        if False:",
           (f"{STREAM}::test_blocks_are_checked_and_emitted_one_matrix_at_a_time",)),
)
