"""The references an export is checked against, which we did not write: transformers' own greedy
continuation, and the base model with a LoRA adapter applied by PEFT itself (not merged).

Host side (torch, transformers, peft imported inside the functions). Validation and the tests use these;
the tiny random models and bundles of the tests live in testing.py, which nothing here imports.
"""
from __future__ import annotations

from pathlib import Path


def hf_greedy(hf_model, ids, max_new_tokens: int, eos_ids=(2,)) -> list[int]:
    """transformers' greedy continuation of `ids`, without the final eos (our generator never yields it)."""
    import torch

    eos = list(eos_ids)
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([list(ids)]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=int(eos[0]),
                                repetition_penalty=1.0)  # plain greedy, whatever the folder's generation_config.json says
    tokens = out[0, len(ids):].tolist()
    return tokens[:-1] if tokens and tokens[-1] in eos else tokens


def peft_reference(hf_model, adapter_dir: Path):
    """The base model with the adapter applied by PEFT itself (not merged): what a merged export is checked against."""
    try:
        from peft import PeftModel
    except ImportError as e:
        from edge_sdk import install_hint
        from edge_sdk.errors import SourceError

        raise SourceError(f"exporting with an adapter needs peft (the reference it is checked against): "
                          f"{install_hint('export')}") from e
    return PeftModel.from_pretrained(hf_model, str(adapter_dir)).eval()


def with_peft_adapter(hf_model, name: str, path: Path):
    """The PEFT reference with adapter `name` active (the first one wraps the base model): what a run-time
    adapter is checked against."""
    from peft import PeftModel

    if isinstance(hf_model, PeftModel):
        hf_model.load_adapter(str(path), adapter_name=name)
        hf_model.set_adapter(name)
        return hf_model.eval()
    return PeftModel.from_pretrained(hf_model, str(path), adapter_name=name).eval()
