"""Random-weight models at the shapes users deploy, written as a Hugging Face folder and as GGUFs.

    .venv/bin/python benchmarks/scale_models.py tinyllama-1.1b --out /work/scale-data --types --own-types Q4_0
    .venv/bin/python benchmarks/scale_models.py tinyllama-1.1b --out /work/scale-data \\
        --llamacpp-python /work/anchors/llamacpp/bin/python --types Q4_0 Q4_K_M

Speed and memory do not depend on the weights' values, so a model with the published config.json and random
weights measures what the real one would (its quality does not: the benchmark says so where it reports
perplexity). For each shape this writes, under OUT/NAME/ (each step skipped when its output exists):

- hf/: config.json with the published values, random bf16 weights (N(0, 0.02), the configs' initializer_range;
  RMSNorm scales 1, Gemma's stored as 0), a byte-level BPE tokenizer of the model's vocabulary size (random
  merges, the model's special tokens at their published ids) and a chat template of the family's form;
- NAME.f16.gguf: our GGUF writer (exporters/gguf/write.py), F16 matrices, the input of
- NAME.Q4_0.gguf with --own-types Q4_0: our writer, every matrix Q4_0 (gguf-py's quantizer; no llama.cpp);
- NAME.Q4_0.gguf, NAME.Q4_K_M.gguf, ...: llama.cpp's own quantizer (benchmarks/make_kquant_gguf.py in the
  llama.cpp venv), what users download.

The configs are the published config.json of each model (values copied, URL in `source`). Where those files
name something our random folder does not need (architectures, torch_dtype, transformers_version), it is kept
for the record; the tokenizer is synthetic (no real tokenizer is reachable offline here).
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
          "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
ZEPHYR = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")

SHAPES = {
    "tinyllama-1.1b": {
        "source": "https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0/blob/main/config.json",
        "config": {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
            "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
            "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
            "hidden_act": "silu", "tie_word_embeddings": False, "initializer_range": 0.02, "attention_bias": False,
            "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16", "rope_scaling": None,
        },
        # Llama's specials at their ids (its real tokenizer is sentencepiece; a byte-level BPE of the same size
        # here); the chat template is TinyLlama-Chat's (Zephyr) form, whose role markers are plain text.
        "specials": {"<unk>": 0, "<s>": 1, "</s>": 2}, "bos": "<s>", "eos": "</s>", "pad": "</s>",
        "template": ZEPHYR,
    },
    "qwen2.5-0.5b": {
        "source": "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/config.json",
        "config": {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
            "hidden_act": "silu", "tie_word_embeddings": True, "initializer_range": 0.02, "sliding_window": 32768,
            "use_sliding_window": False, "max_window_layers": 21, "bos_token_id": 151643, "eos_token_id": 151645,
            "torch_dtype": "bfloat16", "rope_scaling": None,
        },
        "specials": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645},
        "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>", "template": CHATML,
    },
    "gemma3-1b": {
        "source": "https://huggingface.co/google/gemma-3-1b-it/blob/main/config.json",
        "config": {
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 1152,
            "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1,
            "head_dim": 256, "vocab_size": 262144, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": None, "sliding_window": 512,
            "sliding_window_pattern": 6, "query_pre_attn_scalar": 256, "hidden_activation": "gelu_pytorch_tanh",
            "attn_logit_softcapping": None, "final_logit_softcapping": None, "tie_word_embeddings": True,
            "initializer_range": 0.02, "bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0,
            "torch_dtype": "bfloat16",
        },
        "specials": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105, "<end_of_turn>": 106},
        "bos": "<bos>", "eos": "<eos>", "pad": "<pad>", "template": "gemma3",
    },
}


def log(msg: str) -> None:
    print(f"[scale_models] {msg}", file=sys.stderr, flush=True)


def byte_level_tokenizer(vocab_size: int, specials: dict[str, int], seed: int = 0) -> dict:
    """A byte-level BPE tokenizer.json of exactly `vocab_size` tokens: the 256 byte symbols, then random merges
    of existing pieces (each merge a new token, as a trained vocabulary is built), specials at their ids.
    Loading it costs what a real vocabulary of that size costs; its pieces are not a language's."""
    from tokenizers import pre_tokenizers

    rng = random.Random(seed)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = dict(specials)  # in the model's vocabulary too, as a trained one has them: ids 0..n-1
    taken = set(specials.values())
    next_id = 0

    def add(piece: str) -> None:
        nonlocal next_id
        while next_id in taken:
            next_id += 1
        vocab[piece] = next_id
        taken.add(next_id)

    for ch in alphabet:
        add(ch)
    # Favour short, frequent-looking pieces: letters and the space marker, as real merges are.
    common = [c for c in alphabet if c.isalpha() and c.isascii()] + ["Ġ"]
    pieces, merges = list(common), []
    n_merges = vocab_size - len(alphabet) - len(specials)
    while len(merges) < n_merges:
        left = rng.choice(pieces)
        right = rng.choice(common if rng.random() < 0.7 else pieces)
        if left + right in vocab or len(left) + len(right) > 12:
            continue
        add(left + right)
        pieces.append(left + right)
        merges.append([left, right])
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for t, i in sorted(specials.items(), key=lambda kv: kv[1])]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def make_hf(name: str, out: Path, seed: int = 0) -> Path:
    """OUT/hf: the published config, random bf16 weights, the synthetic tokenizer (skipped if present)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    shape = SHAPES[name]
    if (out / "model.safetensors").is_file():
        return out
    part = out.with_name(out.name + ".part")
    part.mkdir(parents=True, exist_ok=True)
    cfg = dict(shape["config"])
    (part / "config.json").write_text(json.dumps(cfg, indent=2))
    with torch.device("meta"):  # names and shapes only: no memory for a model we never run here
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(part)))
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    std = float(cfg["initializer_range"])
    for key, p in model.state_dict().items():
        if cfg["tie_word_embeddings"] and key == "lm_head.weight":
            continue  # tied: stored once, as the published checkpoints do
        if p.dim() == 1:  # RMSNorm scales (Gemma stores w in (1 + w)), biases
            value = 0.0 if (cfg["model_type"] == "gemma3_text" and key.endswith("norm.weight")) else (
                1.0 if key.endswith("norm.weight") else None)
            t = (torch.full(p.shape, value) if value is not None else torch.randn(p.shape, generator=gen) * std)
        else:
            t = torch.randn(p.shape, generator=gen) * std
        tensors[key] = t.to(torch.bfloat16)
    save_file(tensors, str(part / "model.safetensors"), metadata={"format": "pt"})
    del tensors

    tok_json = byte_level_tokenizer(cfg["vocab_size"], shape["specials"], seed)
    (part / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False))
    template = shape["template"]
    if template == "gemma3":
        from edge_sdk.exporters.testing import GEMMA3_CHAT

        template = GEMMA3_CHAT
    tok = PreTrainedTokenizerFast(tokenizer_file=str(part / "tokenizer.json"), bos_token=shape["bos"],
                                  eos_token=shape["eos"], pad_token=shape["pad"], unk_token=None)
    tok.chat_template = template
    tok.save_pretrained(str(part))
    (part / "README.txt").write_text(f"Random weights at the shape of {shape['source']} (benchmarks/scale_models.py).\n")
    part.rename(out)
    return out


def make_gguf(hf: Path, path: Path, qtype: str) -> Path:
    """Every matrix as `qtype` (Q4_0, Q8_0, F16: what gguf-py quantizes), written by our GGUF writer."""
    from edge_sdk.exporters.gguf.write import write_model_gguf

    if path.is_file():
        return path
    tmp = path.with_name(path.name + ".part")
    write_model_gguf(hf, tmp, lambda name, w: qtype)
    tmp.rename(path)
    return path


def quantize(py: Path, src: Path, qtype: str, path: Path, threads: int) -> Path:
    if path.is_file():
        return path
    tmp = path.with_name(path.name + ".part")
    subprocess.run([str(py), str(HERE / "make_kquant_gguf.py"), str(src), str(tmp), "--type", qtype,
                    "--threads", str(threads)], check=True, stdout=subprocess.DEVNULL)
    tmp.rename(path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", choices=sorted(SHAPES))
    p.add_argument("--out", type=Path, required=True, help="folder for the models (outside the repository)")
    p.add_argument("--llamacpp-python", type=Path, help="the llama.cpp venv's python (for the quantized GGUFs)")
    p.add_argument("--types", nargs="*", default=["Q4_0", "Q4_K_M"], help="llama.cpp file types to write")
    p.add_argument("--own-types", nargs="*", default=[],
                   help="GGUF types written by our writer, without llama.cpp (e.g. Q4_0: every matrix Q4_0)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep-f16", action="store_true", help="keep the F16 GGUF (by default removed once quantized)")
    args = p.parse_args()
    for name in args.names:
        root = args.out / name
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        hf = make_hf(name, root / "hf")
        log(f"{name}: HF folder {hf} ({time.perf_counter() - t0:.0f} s)")
        for qtype in args.own_types:
            t1 = time.perf_counter()
            own = make_gguf(hf, root / f"{name}.{qtype}.gguf", qtype)
            log(f"{name}: {own} ({own.stat().st_size / 1e9:.2f} GB, {time.perf_counter() - t1:.0f} s)")
        targets = [root / f"{name}.{q}.gguf" for q in args.types]
        if all(t.is_file() for t in targets) and not args.keep_f16:  # nothing for llama.cpp to quantize
            continue
        f16 = make_gguf(hf, root / f"{name}.f16.gguf", "F16")
        log(f"{name}: {f16} ({f16.stat().st_size / 1e9:.2f} GB)")
        if args.types and not args.llamacpp_python:
            p.error("--llamacpp-python is needed to write quantized GGUFs")
        for qtype, target in zip(args.types, targets):
            quantize(args.llamacpp_python, f16, qtype, target, args.threads)
            log(f"{name}: {target} ({target.stat().st_size / 1e9:.2f} GB)")
        if not args.keep_f16 and targets:
            f16.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
