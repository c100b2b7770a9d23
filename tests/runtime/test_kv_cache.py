"""KV cache verbs over preallocated buffers."""
from __future__ import annotations

import pytest

from edge_sdk.errors import ContextLengthError
from edge_sdk.runtime.kv_cache import KVCache


def make(capacity=8):
    return KVCache(2, 3, 4, capacity, "past.{layer}.{kind}", "present.{layer}.{kind}")


def test_buffers_are_allocated_once_with_the_manifest_names():
    c = make()
    assert [s[0] for s in c.slots] == ["past.0.key", "past.0.value", "past.1.key", "past.1.value"]
    assert [s[1] for s in c.slots][-1] == "present.1.value"
    assert all(s[2].shape() == [1, 3, 8, 4] for s in c.slots)
    assert c.nbytes == 4 * 3 * 8 * 4 * 4
    before = [s[2].data_ptr() for s in c.slots]
    c.append(5)
    c.rewind(2)
    c.reset()
    assert [s[2].data_ptr() for s in c.slots] == before  # verbs never reallocate


def test_append_rewind_reset_offset():
    c = make()
    c.append(3)
    c.append(1)
    assert c.offset == 4
    c.rewind(3)
    assert c.offset == 1
    c.reset()
    assert c.offset == 0


def test_overflow_is_a_clear_error_and_changes_nothing():
    c = make(8)
    c.append(6)
    with pytest.raises(ContextLengthError, match="exceeds the maximum context of 8"):
        c.append(3)
    assert c.offset == 6


def test_rewind_past_the_start_is_refused():
    c = make()
    c.append(2)
    with pytest.raises(ValueError):
        c.rewind(3)
    with pytest.raises(ValueError):
        c.rewind(-1)


def test_buffers_wrap_numpy_memory_without_copy():
    c = make()
    c._arrays[0][0, 0, 0, 0] = 7.0
    assert c.slots[0][2].numpy()[0, 0, 0, 0] == 7.0
