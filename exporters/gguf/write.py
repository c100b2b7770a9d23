"""Write a small Hugging Face model as a GGUF file, with chosen quantization types per tensor (tests).

The layout is what llama.cpp's converter writes (gguf-py's name map, Llama's q/k rows permuted for
its interleaved RoPE, the byte-level BPE vocabulary as tokens + merges), so transformers loads the file
like a published one. gguf-py quantizes Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 but not the k-quants; those are
encoded here, simply (a sub-block's min/max or absmax, no search as llama.cpp does), and every encoder
is checked by tests against gguf-py's dequantize, which transformers uses to read them back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from .blocks import QK_K


def _f16_bytes(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.astype(np.float16)).view(np.uint8).reshape(-1, 2)


def _pack_k_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Inverse of blocks._k_scales: eight 6-bit scales and mins [n, 8] into 12 bytes [n, 12]."""
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), np.uint8)
    out[:, 0:4] = (sc[:, :4] & 63) | ((sc[:, 4:] >> 4) << 6)
    out[:, 4:8] = (mn[:, :4] & 63) | ((mn[:, 4:] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:] & 15) | ((mn[:, 4:] & 15) << 4)
    return out


def _k_grid(x: np.ndarray, levels: int):
    """Q4_K/Q5_K: per sub-block of 32, w ~ d*sc*q - dmin*m with 6-bit sc, m; returns (q, d, dmin, sc, m)."""
    sub = x.reshape(-1, 8, 32)
    lo = np.minimum(sub.min(-1), 0.0)  # the format stores -min >= 0
    step = (sub.max(-1) - lo) / levels
    d = np.maximum(step.max(-1), 1e-12) / 63
    dmin = np.maximum((-lo).max(-1), 1e-12) / 63
    d16, dmin16 = d.astype(np.float16).astype(np.float32), dmin.astype(np.float16).astype(np.float32)
    d16, dmin16 = np.where(d16 > 0, d16, 6e-8), np.where(dmin16 > 0, dmin16, 6e-8)
    sc = np.clip(np.rint(step / d16[:, None]), 1, 63)
    m = np.clip(np.rint(-lo / dmin16[:, None]), 0, 63)
    scale, low = d16[:, None] * sc, -(dmin16[:, None] * m)
    q = np.clip(np.rint((sub - low[..., None]) / scale[..., None]), 0, levels).astype(np.uint8)
    return q.reshape(-1, QK_K), d16, dmin16, sc, m


def _k_nibbles(q: np.ndarray) -> np.ndarray:
    g = (q & 0x0F).reshape(-1, 4, 2, 32)
    return (g[:, :, 0] | (g[:, :, 1] << 4)).reshape(-1, 128)


def encode_q4_k(x: np.ndarray) -> np.ndarray:
    q, d, dmin, sc, m = _k_grid(x, 15)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_k_scales(sc, m), _k_nibbles(q)], axis=1)


def encode_q5_k(x: np.ndarray) -> np.ndarray:
    q, d, dmin, sc, m = _k_grid(x, 31)
    high = ((q >> 4) & 1).reshape(-1, 8, 32)  # bit j of qh byte l: element l of sub-block j
    qh = (high << np.arange(8, dtype=np.uint8)[None, :, None]).sum(1).astype(np.uint8)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_k_scales(sc, m), qh, _k_nibbles(q)], axis=1)


def encode_q6_k(x: np.ndarray) -> np.ndarray:
    sub = x.reshape(-1, 16, 16)
    step = np.abs(sub).max(-1) / 31
    d = np.maximum(np.abs(step).max(-1), 1e-12) / 127
    d16 = d.astype(np.float16).astype(np.float32)
    d16 = np.where(d16 > 0, d16, 6e-8)
    sc = np.clip(np.rint(step / d16[:, None]), 1, 127)
    scale = d16[:, None] * sc
    q = (np.clip(np.rint(sub / scale[..., None]), -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 4, 32)
    # Half h: ql bytes 0-63 hold elements 0-63 (low nibble) and 64-127 (high); qh bytes 0-31 hold the top
    # two bits of elements 0-31, 32-63, 64-95, 96-127 in bit pairs 0, 2, 4, 6.
    low = q & 0x0F
    ql = (low.reshape(-1, 2, 2, 64)[:, :, 0] | (low.reshape(-1, 2, 2, 64)[:, :, 1] << 4)).reshape(-1, 128)
    top = (q >> 4) & 0x03
    qh = (top[:, :, 0] | (top[:, :, 1] << 2) | (top[:, :, 2] << 4) | (top[:, :, 3] << 6)).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), _f16_bytes(d16)], axis=1)


K_ENCODERS = {"Q4_K": encode_q4_k, "Q5_K": encode_q5_k, "Q6_K": encode_q6_k}


def quantize(w: np.ndarray, qtype: str) -> np.ndarray:
    """A 2-D fp32 matrix as the raw bytes of GGUF type `qtype` [rows, bytes per row]."""
    import gguf

    rows = w.shape[0]
    if qtype in K_ENCODERS:
        return K_ENCODERS[qtype](np.asarray(w, np.float32).reshape(-1, QK_K)).reshape(rows, -1)
    return gguf.quants.quantize(np.asarray(w, np.float32), getattr(gguf.GGMLQuantizationType, qtype))


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order for Llama (its RoPE pairs adjacent elements; HF pairs the two halves)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model_dir: Path):
    """(HF name, fp32 array) of every tensor in the folder's safetensors, one at a time, in file order (read
    through torch, which also reads bf16, the dtype most checkpoints are published in)."""
    from safetensors import safe_open

    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                yield name, st.get_tensor(name).float().numpy()


def _as_gguf(t: np.ndarray, arch: str, base: str, heads: int, kv_heads: int) -> np.ndarray:
    """An HF tensor as llama.cpp's converter stores it."""
    if arch == "llama" and base.endswith("self_attn.q_proj"):
        return _permute(t, heads)
    if arch == "llama" and base.endswith("self_attn.k_proj"):
        return _permute(t, kv_heads)
    if arch == "gemma3" and base.endswith("norm"):
        return t + 1.0  # llama.cpp stores Gemma's RMSNorm scale (1 + w); transformers subtracts the 1 again
    return t


def _stored(shape: tuple[int, ...], qtype: str) -> tuple[tuple[int, ...], type]:
    """(the data's numpy shape, its numpy dtype) of a tensor of `shape` written as `qtype`."""
    import gguf

    if qtype == "F32":
        return tuple(shape), np.float32
    if qtype == "F16":
        return tuple(shape), np.float16
    return tuple(gguf.quant_shape_to_byte_shape(shape, getattr(gguf.GGMLQuantizationType, qtype))), np.uint8


def write_model_gguf(model_dir: str | Path, path: str | Path, qtype_of: Callable[[str, np.ndarray], str], *,
                     add_bos: bool = False) -> Path:
    """GGUF of the transformers model folder `model_dir` (llama, qwen2, qwen3, gemma3_text; byte-level BPE).

    `qtype_of(gguf_name, weight)` picks each 2-D weight's type ("F32", "Q4_K", ...); norms and biases stay F32.
    `add_bos`: the file's tokenizer.ggml.add_bos_token (plain-text prompts start with BOS, as many base models'
    do). The chat template is the folder's chat_template.jinja, if it has one (a base model has none)."""
    import gguf

    model_dir, path = Path(model_dir), Path(path)
    cfg = json.loads((model_dir / "config.json").read_text())
    arch = {"gemma3_text": "gemma3"}.get(cfg["model_type"], cfg["model_type"])  # GGUF's architecture names
    n_layers, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    name_map = gguf.get_tensor_name_map(arch_enum, n_layers)

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(model_dir.name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_vocab_size(cfg["vocab_size"])
    if cfg.get("sliding_window"):
        w.add_sliding_window(cfg["sliding_window"])

    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    added = {a["content"]: a["id"] for a in tok.get("added_tokens", [])}
    tokens += [None] * (cfg["vocab_size"] - len(tokens))
    for text, i in added.items():
        tokens[i] = text
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")  # llama.cpp's name for the GPT-2 regex; it refuses to load "gpt2"
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    tcfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    for key, add in (("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id), ("pad_token", w.add_pad_token_id)):
        if tcfg.get(key) in added:
            add(added[tcfg[key]])
    w.add_add_bos_token(add_bos)
    template = model_dir / "chat_template.jinja"
    if template.is_file():
        w.add_chat_template(template.read_text())

    # Two passes over the safetensors, one tensor in memory at a time (a 1.1B model is 4.4 GB in fp32): the
    # header needs every tensor's type and size before the first byte of data.
    plan = []  # (HF name, its base name, GGUF type), in file order: the order the data is written in
    for hf_name, t in _tensors(model_dir):
        base, _, suffix = hf_name.rpartition(".")
        g = name_map.get_name(base)
        if g is None:
            continue
        t = _as_gguf(t, arch, base, heads, kv_heads)
        qtype = qtype_of(f"{g}.{suffix}", t) if t.ndim == 2 else "F32"
        data_shape, dtype = _stored(t.shape, qtype)
        nbytes = int(np.prod(data_shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(f"{g}.{suffix}", data_shape, np.dtype(dtype), nbytes,
                          raw_dtype=None if qtype in ("F32", "F16") else getattr(gguf.GGMLQuantizationType, qtype))
        plan.append((hf_name, base, qtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    types = {hf: (base, qtype) for hf, base, qtype in plan}
    for hf_name, t in _tensors(model_dir):
        if hf_name not in types:
            continue
        base, qtype = types[hf_name]
        t = _as_gguf(t, arch, base, heads, kv_heads)
        w.write_tensor_data(quantize(t, qtype) if qtype != "F32" else t.astype(np.float32))
    w.close()
    return path
