"""Does a model fit a device? Weights + KV cache at maximum context + working memory vs the budget."""
from __future__ import annotations

from typing import Any

from edge_sdk.errors import DeviceFitError

from .architectures import DecoderArgs
from .recipes import RECIPES, Recipe

MB = 1 << 20


def working_bytes(vocab_size: int) -> int:
    """Activations of a prefill window plus logits, and the onnxruntime arena: a measured-order estimate."""
    return 64 * MB + 512 * vocab_size * 4


def kv_bytes_per_token(args: DecoderArgs, kv_cache: str = "float") -> float:
    """KV-cache bytes per token position in a KV-cache format (runtime/kv_cache.py KV_FORMATS)."""
    from edge_sdk.runtime.kv_cache import KV_FORMATS

    fmt = KV_FORMATS[kv_cache]
    return 2 * args.num_hidden_layers * args.num_key_value_heads * args.head_dim * (fmt.bits or 32) / 8


def estimate(args: DecoderArgs, recipe: Recipe, max_context: int, kv_cache: str = "float") -> dict[str, float]:
    """Memory in MB. The embedding table is a Gather table: fp32 in the fp32 recipe, fp16 otherwise,
    and none in the emitted quantized recipes when the head is tied (rows are read from the head's table)."""
    embed = args.vocab_size * args.hidden_size
    matmul_params = args.parameter_count() - embed
    table_bytes = 4 if recipe.name == "fp32" else 2
    if args.tie_word_embeddings:
        matmul_params += embed  # the tied lm_head is stored as a MatMul weight in the recipe's format
        if recipe.method == "emit" and recipe.name != "fp32":
            table_bytes = 0  # exporters/graph/linear.py make_int8_gather
    weights = embed * table_bytes + matmul_params * recipe.bytes_per_weight
    kv = kv_bytes_per_token(args, kv_cache) * max_context
    working = working_bytes(args.vocab_size)
    return {"weights_mb": round(weights / MB, 1), "kv_cache_mb": round(kv / MB, 1),
            "working_mb": round(working / MB, 1), "total_mb": round((weights + kv + working) / MB, 1)}


def check_fit(args: DecoderArgs, recipe: Recipe, profile, max_context: int, kv_cache: str = "float") -> dict[str, Any]:
    est = estimate(args, recipe, max_context, kv_cache)
    budget = profile.memory_budget_mb
    if est["total_mb"] <= budget:
        return {**est, "budget_mb": budget, "fits": True}
    # Suggest what would fit: this recipe with a shorter context, else a smaller recipe with the longest
    # context that fits (multiples of 256 tokens, at least 256).
    hints = []
    if kv_cache == "float" and profile.flavour == "fused":  # the same recipe and context with an int8 cache
        alt = estimate(args, recipe, max_context, "int8")
        if alt["total_mb"] <= budget:
            hints.append(f"--kv-cache int8 (KV cache {alt['kv_cache_mb']:.0f} MB at {max_context} tokens)")
    per_token = est["kv_cache_mb"] / max_context
    candidates = [recipe] + sorted((r for r in RECIPES.values() if profile.flavour in r.flavours
                                    and r.bytes_per_weight < recipe.bytes_per_weight), key=lambda r: -r.bytes_per_weight)
    for r in candidates:
        alt = estimate(args, r, max_context, kv_cache)
        room = budget - alt["weights_mb"] - alt["working_mb"]
        ctx = min(max_context, int(room / per_token) // 256 * 256) if room > 0 else 0
        if ctx >= 256:
            hints.append(f"--recipe {r.name} --max-context {ctx}")
        if len(hints) >= 2:
            break
    raise DeviceFitError(
        f"the model does not fit {profile.name}'s memory budget of {budget} MB: weights {est['weights_mb']:.0f} MB + "
        f"KV cache at {max_context} tokens {est['kv_cache_mb']:.0f} MB + working memory {est['working_mb']:.0f} MB = "
        f"{est['total_mb']:.0f} MB. " + ("What would fit: " + "; ".join(hints) if hints else
                                        "Nothing fits: pick a smaller model or a device with more memory.")
    )
