"""Does a model fit a device? Weights + KV cache at maximum context + working memory vs the budget."""
from __future__ import annotations

from typing import Any

from edge_sdk.errors import DeviceFitError

from .architectures import DecoderArgs
from .recipes import RECIPES, Recipe

MB = 1 << 20


def estimate(args: DecoderArgs, recipe: Recipe, max_context: int) -> dict[str, float]:
    """Memory in MB. The embedding table stays fp32 for the Gather (it is read one row per token)."""
    embed = args.vocab_size * args.hidden_size
    matmul_params = args.parameter_count() - embed - (0 if args.tie_word_embeddings else 0)
    if args.tie_word_embeddings:
        matmul_params += embed  # the tied lm_head is stored again, transposed, as a MatMul weight
    weights = embed * 4 + matmul_params * recipe.bytes_per_weight
    kv = 2 * args.num_hidden_layers * args.num_key_value_heads * args.head_dim * max_context * 4
    # Activations of a prefill window plus logits, and the onnxruntime arena: a measured-order estimate.
    working = 64 * MB + 512 * args.vocab_size * 4
    return {"weights_mb": round(weights / MB, 1), "kv_cache_mb": round(kv / MB, 1),
            "working_mb": round(working / MB, 1), "total_mb": round((weights + kv + working) / MB, 1)}


def check_fit(args: DecoderArgs, recipe: Recipe, profile, max_context: int) -> dict[str, Any]:
    est = estimate(args, recipe, max_context)
    budget = profile.memory_budget_mb
    if est["total_mb"] <= budget:
        return {**est, "budget_mb": budget, "fits": True}
    # Suggest what would fit: a shorter context with this recipe, or a smaller recipe.
    hints = []
    per_token = est["kv_cache_mb"] / max_context
    room = budget - est["weights_mb"] - est["working_mb"]
    if room > per_token * 256:
        hints.append(f"--max-context {int(room / per_token) // 256 * 256} (recipe {recipe.name})")
    for r in sorted(RECIPES.values(), key=lambda r: r.bytes_per_weight):
        if r.bytes_per_weight < recipe.bytes_per_weight and profile.flavour in r.flavours:
            alt = estimate(args, r, max_context)
            if alt["total_mb"] <= budget:
                hints.append(f"--recipe {r.name} ({alt['total_mb']:.0f} MB)")
                break
    raise DeviceFitError(
        f"the model does not fit {profile.name}'s memory budget of {budget} MB: weights {est['weights_mb']:.0f} MB + "
        f"KV cache at {max_context} tokens {est['kv_cache_mb']:.0f} MB + working memory {est['working_mb']:.0f} MB = "
        f"{est['total_mb']:.0f} MB. " + ("What would fit: " + "; ".join(hints) if hints else
                                        "Nothing fits: pick a smaller model or a device with more memory.")
    )
