"""Mutants of the quantization recipes' activation choices (exporters/recipes.py, exporters/graph/linear.py)."""
from __future__ import annotations

from .mutants import Mutant

_RECIPES = "tests/exporters/test_recipes.py"
_DEFAULT = "test_the_default_and_its_mixes_keep_int4_b32_weights_and_say_their_precision_in_the_manifest"

MUTANTS = (
    Mutant("head's exact top-k skipped", "exporters/graph/linear.py",
           "return exact_top(b, x, y, blocks, name, exact_top_k) if exact_top_k else y", "return y",
           (f"{_RECIPES}::test_a32_keeps_layer_activations_fp32_and_recomputes_the_head_top_k_exactly",)),
    Mutant("exact top-k scatters the approximate values back", "exporters/graph/linear.py",
           'return b.op("ScatterElements", [y, idx, exact], axis=-1)',
           'return b.op("ScatterElements", [y, idx, b.op("GatherElements", [y, idx], axis=-1)], axis=-1)',
           (f"{_RECIPES}::test_exact_top_reads_the_head_table_it_recomputes",)),
    Mutant("fp32 activations ignored for layer projections", "exporters/recipes.py",
           "    return 0 if fp32 else recipe.accuracy_level", "    return recipe.accuracy_level",
           (f"{_RECIPES}::test_accuracy_level_per_linear_follows_the_recipe_fields",
            f"{_RECIPES}::test_a32_keeps_layer_activations_fp32_and_recomputes_the_head_top_k_exactly")),
    Mutant("the last layers counted from the start", "exporters/recipes.py",
           "layer >= num_layers - recipe.fp32_last_layers", "layer < recipe.fp32_last_layers",
           (f"{_RECIPES}::test_accuracy_level_per_linear_follows_the_recipe_fields",)),
    Mutant("per-linear accuracy level not passed to the blocks", "exporters/graph/linear.py",
           "return from_blocks(b, x, blocks, name, level(name), exact_top_k(name))",
           "return from_blocks(b, x, blocks, name, 4, exact_top_k(name))",
           (f"{_RECIPES}::test_a32_keeps_layer_activations_fp32_and_recomputes_the_head_top_k_exactly",)),
    Mutant("the default's mixes re-quantize a GGUF instead of reading its blocks", "exporters/recipes.py",
           'return Recipe(name, f"{_LAYOUT}; {what}", ("fused",), **_INT4_B32, **kw)',
           'return Recipe(name, f"{_LAYOUT}; {what}", ("fused",), **{**_INT4_B32, "source_blocks": False}, **kw)',
           (f"{_RECIPES}::{_DEFAULT}",)),
    Mutant("the manifest leaves out the head's exact top-k", "exporters/recipes.py",
           '**({"exact_top_k": self.exact_top_k} if self.exact_top_k else {})', "",
           (f"{_RECIPES}::{_DEFAULT}",)),
    Mutant("the laptop profile back on int8 activations", "devices/x86-64-laptop.json",
           '"recipe": "int4-b32-a32"', '"recipe": "int4-b32"',
           (f"{_RECIPES}::{_DEFAULT}", "tests/unit/test_devices.py::test_profile_choices")),
)
