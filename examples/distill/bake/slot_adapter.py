"""Write an untrained PEFT LoRA (B = 0, so it changes nothing) of SmolLM2-135M-Instruct, only so that
`edge-sdk export --adapters` gives the bundle adapter slots; the baked adapter is switched in later by
`edge-sdk distill --bake-system` itself (a temporary copy with `edge-sdk adapter add`).

    python examples/distill/bake/slot_adapter.py /tmp/bake/noop-adapter
"""
from __future__ import annotations

import sys

import peft
import torch

from edge_sdk.exporters.sources import resolve


def main(out: str, spec: str = "smollm2-135m-instruct") -> None:
    src = resolve(spec)
    torch.manual_seed(0)
    model = peft.get_peft_model(src.load_model(), peft.LoraConfig(
        r=8, lora_alpha=16, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.save_pretrained(out)  # PEFT starts B at zero: the adapter is the base model exactly
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
