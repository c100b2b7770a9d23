"""Names the graphs share with what reads them: one helper builds every KV name, so emitters, manifest and
runtime agree; one tag marks the nodes the QDQ pass (exporters/qdq.py) must leave float."""
from __future__ import annotations

# Written into the manifest as is; the runtime formats them with layer= and kind= ("key"/"value").
KV_TEMPLATES = {"past": "past_key_values.{layer}.{kind}", "present": "present.{layer}.{kind}"}


def kv_names(layer: int, direction: str) -> dict[str, str]:
    """{'key': ..., 'value': ...} for `direction` 'past' (input) or 'present' (output)."""
    if direction not in KV_TEMPLATES:
        raise ValueError(f"direction must be 'past' or 'present', not {direction!r}")
    return {kind: KV_TEMPLATES[direction].format(layer=layer, kind=kind) for kind in ("key", "value")}


# doc_string of nodes that must not be quantized (the residual stream; see graph/static.py StaticOps.norm).
KEEP_FLOAT = "edge_sdk:keep-float"
