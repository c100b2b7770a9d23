"""Experiment, not a recipe: export with the CPU default recipe, except that 8-bit layer matrices (k-quant
fallbacks such as Q5_0 / Q6_K in a Q4_K_M GGUF) run at accuracy level 4 (int8 activations) instead of 0.

    .venv/bin/python benchmarks/q8act_experiment.py GGUF OUTPUT [--no-validate]

onnxruntime has no fast fp32-activation kernel for 8-bit MatMulNBits (docs/benchmarks.md, "Gemma 3 1B shape",
benchmarks/matmulnbits_levels.py), so the default decodes such a file ~40x slower than llama.cpp. This wraps
exporters/graph/linear.py's `from_blocks` for one export to measure what the change would buy and cost; the
head keeps what the recipe gives it. A bundle made this way says the default recipe in its manifest: keep it
for measurement only.
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--no-validate"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.graph import linear

    original, changed = linear.from_blocks, []

    def from_blocks(b, x, blocks, name, accuracy_level=4, exact_top_k=0):
        if blocks.bits == 8 and accuracy_level == 0 and name != "lm_head":
            changed.append(name)
            accuracy_level = 4
        return original(b, x, blocks, name, accuracy_level, exact_top_k)

    linear.from_blocks = from_blocks
    try:
        export(args[0], args[1], force=True, validate="--no-validate" not in argv)
    finally:
        linear.from_blocks = original
    print(f"8-bit layer matrices moved to accuracy level 4: {len(changed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
