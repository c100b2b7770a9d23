"""How a linear layer y = x @ W^T is written into the graph: one function per weight format.

Each takes the HF weight `w` as [out, in] float32 and returns the output name. Emitters call
`ops.linear(...)`; the recipe picks the function, so flavours never branch on recipes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edge_sdk.exporters.gguf.blocks import Blocks

from .builder import MS_DOMAIN, GraphBuilder

Linear = Callable[[GraphBuilder, str, np.ndarray, str], str]
# The same for weights already in blocks (a recipe's quantizer or a GGUF's own): (builder, x, blocks, name) -> y.
BlockLinear = Callable[[GraphBuilder, str, Blocks, str], str]
# An embedding lookup in a head's format: (builder, ids, table [vocab, hidden], head name) -> rows.
Gather = Callable[[GraphBuilder, str, np.ndarray, str], str]


def fp32(b: GraphBuilder, x: str, w: np.ndarray, name: str) -> str:
    return b.op("MatMul", [x, b.weight(f"{name}.weight", np.ascontiguousarray(w.T))])


def _offset_int4(w: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q [out, in/block, block] in 0..15, d, m [out, in/block]): see `quantize_offset_int4`."""
    out_f, in_f = w.shape
    wb = w.reshape(out_f, in_f // block, block)
    m = wb.min(-1)
    d = (wb.max(-1) - m) / 15.0
    d = np.where(d > 0, d, 1.0).astype(np.float32)  # a constant block: q = 0 everywhere, any scale works
    q = np.clip(np.rint((wb - m[..., None]) / d[..., None]), 0, 15).astype(np.uint8)
    return q, d, m.astype(np.float32)


def quantize_offset_int4(w: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blockwise w ≈ d * q + m with q in 0..15 per block of `block` inputs (the GGUF Q4_1 layout).

    Returns packed q [out, in/block, block/2] (low nibble first), d and m [out, in/block]. A weight
    that is already Q4_1 (a GGUF source dequantized by transformers) comes back exactly: Q4_1 maps a
    block's minimum to q=0 and its maximum to q=15, so min/max recover m and d.
    """
    q, d, m = _offset_int4(w, block)
    return _pack_nibbles(q), d, m


def make_int4_offset(block: int = 32, accuracy_level: int = 4, blocks_linear: "BlockLinear | None" = None) -> Linear:
    """int4 weights with a float per-block offset, using only onnxruntime's fast kernels.

    w = d * q + m is written as d * (q - 8) + m' with m' = m + 8d: MatMulNBits with no zero-point
    input takes 8 as every block's zero point, its symmetric path (the int8 kernels on x86, KleidiAI
    on arm64 - which takes symmetric weights only; a float zero point would fall back to a ~25x
    slower kernel). For a GGUF Q4_1 source, d and m are fp16, so m + 8d is exact in fp32. The offset
    adds sum_b m'_b * (sum of x over block b), i.e. the block sums of x [.., in/block] times m'^T
    [in/block, out] - a matmul 1/block the size (`from_blocks`). `blocks_linear` writes the blocks
    (default: `from_blocks` at `accuracy_level`); a recipe passes its own to choose per linear.
    """
    write = blocks_linear or at_level(accuracy_level)

    def linear(b: GraphBuilder, x: str, w: np.ndarray, name: str) -> str:
        out_f, in_f = w.shape
        if in_f % block:
            return fp32(b, x, w, name)
        q, d, m = _offset_int4(w, block)
        blocks = Blocks(4, block, q.reshape(out_f, in_f), d, m + 8 * d, "int4-b32")
        return write(b, x, blocks, name)

    return linear


def quantize_int8_sym(w: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise w = d * (q - 128), d = absmax / 127 (the GGUF Q8_0 layout, q stored + 128 as
    MatMulNBits and GatherBlockQuantized expect with no zero-point input). Returns q [out, in/block,
    block] uint8 and d [out, in/block]. A Q8_0 weight comes back exactly."""
    out_f, in_f = w.shape
    wb = w.reshape(out_f, in_f // block, block)
    d = np.abs(wb).max(-1) / 127.0
    d = np.where(d > 0, d, 1.0).astype(np.float32)
    q = (np.clip(np.rint(wb / d[..., None]), -127, 127) + 128).astype(np.uint8)
    return q, d


def _int8_blocks(w: np.ndarray, block: int) -> Blocks:
    q, d = quantize_int8_sym(w, block)
    return Blocks(8, block, q.reshape(w.shape), d, None, "int8")


def make_int8_sym(block: int = 32, accuracy_level: int = 4, blocks_linear: "BlockLinear | None" = None) -> Linear:
    """int8 symmetric blocks (the GGUF Q8_0 layout), see `quantize_int8_sym`; `blocks_linear` as in
    `make_int4_offset`."""
    write = blocks_linear or at_level(accuracy_level)

    def linear(b: GraphBuilder, x: str, w: np.ndarray, name: str) -> str:
        if w.shape[1] % block:
            return fp32(b, x, w, name)
        return write(b, x, _int8_blocks(w, block), name)

    return linear


def make_int8_gather(block: int = 32) -> Gather:
    """Embedding rows read from the int8 head's own table (tied embeddings): GatherBlockQuantized over
    the same `{name}.qweight` initializer `make_int8_sym` writes, so the table is stored once (an fp16
    copy cost SmolLM2-135M 56 MB of its 173 MB) and its rows are exactly the head's Q8_0 values."""

    def gather(b: GraphBuilder, ids: str, w: np.ndarray, name: str) -> str:
        return gather_blocks(b, ids, _int8_blocks(w, block), name)

    return gather


def by_name(default: Linear, **overrides: Linear) -> Linear:
    """Route some linears (by name prefix, e.g. lm_head=...) to another format."""

    def linear(b: GraphBuilder, x: str, w: np.ndarray, name: str) -> str:
        for prefix, fn in overrides.items():
            if name.startswith(prefix):
                return fn(b, x, w, name)
        return default(b, x, w, name)

    return linear


# --------------------------------------- blocks (the recipes' formats above, or a GGUF's own: exporters/gguf)
def _block_sums(b: GraphBuilder, x: str, in_f: int, block: int) -> str:
    return b.op("ReduceSum", [b.op("Reshape", [x, b.const([0, 0, in_f // block, block])]), b.const([-1])], keepdims=0)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """4-bit codes [..., block] two to a byte, low nibble first: [..., block/2]."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def _codes(blocks: Blocks) -> np.ndarray:
    """MatMulNBits / GatherBlockQuantized layout: [rows, cols/block, block] bytes, 4-bit codes packed."""
    rows, cols = blocks.shape
    c = blocks.codes.reshape(rows, cols // blocks.block, blocks.block)
    return c if blocks.bits == 8 else _pack_nibbles(c)


def from_blocks(b: GraphBuilder, x: str, blocks: Blocks, name: str, accuracy_level: int = 4,
                exact_top_k: int = 0) -> str:
    """y = x @ W^T for W given as blocks: the codes and scales go into MatMulNBits as they are; a nonzero
    offset adds block sums of x times offset^T (see `make_int4_offset`). Nothing is re-quantized.
    `exact_top_k` > 0: the k largest outputs are recomputed from fp32 x (`exact_top`)."""
    out_f, in_f = blocks.shape
    y = b.op("MatMulNBits", [x, b.weight(f"{name}.qweight", _codes(blocks)), b.weight(f"{name}.scales", blocks.scale.reshape(-1))],
             domain=MS_DOMAIN, K=in_f, N=out_f, bits=blocks.bits, block_size=blocks.block, accuracy_level=accuracy_level)
    if blocks.offset is not None:
        offsets = b.weight(f"{name}.offsets", np.ascontiguousarray(blocks.offset.T))
        y = b.op("Add", [y, b.op("MatMul", [_block_sums(b, x, in_f, blocks.block), offsets])])
    return exact_top(b, x, y, blocks, name, exact_top_k) if exact_top_k else y


def at_level(accuracy_level: int | Callable[[str], int], exact_top_k: Callable[[str], int] = lambda name: 0) -> BlockLinear:
    """`from_blocks` with an accuracy level (and exact top-k) per linear name, as a recipe chooses them."""
    level = accuracy_level if callable(accuracy_level) else (lambda name: accuracy_level)

    def linear(b: GraphBuilder, x: str, blocks: Blocks, name: str) -> str:
        return from_blocks(b, x, blocks, name, level(name), exact_top_k(name))

    return linear


def exact_top(b: GraphBuilder, x: str, y: str, blocks: Blocks, name: str, k: int) -> str:
    """y (= x @ W^T from int8-rounded activations) with its k largest entries recomputed from fp32 x.

    For the head: int8 activations move the logits by a few hundredths, enough to flip a greedy choice
    wherever fp32 itself is nearly undecided; an 8-bit MatMulNBits has no fast kernel for fp32
    activations (one call of SmolLM2's head takes ~150 ms instead of ~1.5). The top k are those the
    rounding can reorder: their rows are read back from the same table (GatherBlockQuantized, exactly the
    stored weights) and dotted with x in fp32. Greedy and top-k sampling then choose among exact values;
    the other logits keep their int8-activation values. Cost: k rows of the table per position."""
    _, idx = b.op("TopK", [y, b.const([k])], n_out=2, axis=-1)  # [B, S, k]
    rows = gather_blocks(b, idx, blocks, name, ids_rank=3)  # [B, S, k, in]
    exact = b.op("ReduceSum", [b.op("Mul", [rows, b.op("Unsqueeze", [x, b.const([-2])])]), b.const([-1])], keepdims=0)
    return b.op("ScatterElements", [y, idx, exact], axis=-1)


def gather_blocks(b: GraphBuilder, ids: str, blocks: Blocks, name: str, ids_rank: int = 2) -> str:
    """Rows of a block table for `ids` (of rank `ids_rank`): [*ids.shape, cols]. Embedding rows from the head's
    table, so a tied table is stored once; or the head's top rows (`exact_top`). GatherBlockQuantized
    wants scales of the data's rank, MatMulNBits wants them flat: the Reshape is folded by onnxruntime when
    the session loads, the file keeps one copy."""
    rows, cols = blocks.shape
    nb = cols // blocks.block
    scales = b.op("Reshape", [b.weight(f"{name}.scales", blocks.scale.reshape(-1)), b.const([rows, nb, 1])])
    out = b.op("GatherBlockQuantized", [b.weight(f"{name}.qweight", _codes(blocks)), ids, scales], domain=MS_DOMAIN,
               gather_axis=0, quantize_axis=2, block_size=blocks.block, bits=blocks.bits)  # [*ids, nb, block]
    if blocks.offset is not None:
        # The head's own [nb, rows] offsets, gathered along rows: the table is stored once.
        offs = b.op("Gather", [b.weight(f"{name}.offsets", np.ascontiguousarray(blocks.offset.T)), ids], axis=1)
        offs = b.op("Transpose", [offs], perm=[*range(1, ids_rank + 1), 0])  # [nb, *ids] -> [*ids, nb]
        out = b.op("Add", [out, b.op("Unsqueeze", [offs, b.const([-1])])])
    return b.op("Reshape", [out, b.const([0] * ids_rank + [cols])])
