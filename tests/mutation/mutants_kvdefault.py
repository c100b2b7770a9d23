"""Mutants of a profile's default KV cache (issue 26 item 2): an export takes the profile's `kv_cache` unless
told otherwise on the command line."""
from __future__ import annotations

from .mutants import Mutant

TEST = ("tests/exporters/test_kv_quant.py::"
        "test_a_profile_s_kv_cache_is_the_export_default_and_kv_cache_float_overrides_it",)

MUTANTS = (
    Mutant("kv default: the profile's KV cache ignored at export", "exporters/export.py",
           'fmt = name or getattr(profile, "kv_cache", None) or "float"', 'fmt = name or "float"', TEST),
    Mutant("kv default: the profile's KV cache beats --kv-cache", "exporters/export.py",
           'fmt = name or getattr(profile, "kv_cache", None) or "float"',
           'fmt = getattr(profile, "kv_cache", None) or name or "float"', TEST),
)
