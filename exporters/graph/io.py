"""Graph I/O names: one helper builds every KV name, so emitters, manifest and runtime agree."""
from __future__ import annotations


def kv_names(layer: int, direction: str) -> dict[str, str]:
    """{'key': ..., 'value': ...} for `direction` 'past' (input) or 'present' (output)."""
    if direction == "past":
        return {"key": f"past_key_values.{layer}.key", "value": f"past_key_values.{layer}.value"}
    if direction == "present":
        return {"key": f"present.{layer}.key", "value": f"present.{layer}.value"}
    raise ValueError(f"direction must be 'past' or 'present', not {direction!r}")
