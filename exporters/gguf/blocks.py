"""A GGUF tensor's quantized blocks, decoded into the form onnxruntime's block kernels take.

Every GGUF block format stores `w = s * (q - z) + mn` per block of inputs: integer codes q, a float
scale s, for some formats a float minimum mn, and a fixed zero z. MatMulNBits and
GatherBlockQuantized with no zero-point input store `w = s * (c - zp) + offset` with zp = 8 (4 bits)
or 128 (8 bits) and the offset added by the graph (exporters/graph/linear.py). So each format maps
exactly: c = q + shift, offset = mn + s * (zp - z - shift), with shift chosen to keep c in range:

    GGUF type  block  ->  bits  block  offset          why exact
    Q4_0       32         4     32     none            z = 8 = zp
    Q4_1       32         4     32     m + 8d          (one fp32 add)
    Q4_K       256/8x32   4     32     -dmin*m + 8d*sc (one fp32 add)
    Q5_0       32         8     32     none            c = q + 112
    Q5_1       32         8     32     m               c = q + 128
    Q5_K       256/8x32   8     32     -dmin*m         c = q + 128
    Q6_K       256/16x16  8     16     none            c = q + 96
    Q8_0       32         8     32     none            c = q + 128

Scales are the GGUF's fp16 values times the small integer sub-block scales, which fp32 holds exactly.
Byte layouts follow ggml's reference (ggml-quants.c, and gguf-py's dequantizers that transformers
uses); tests/exporters/test_gguf_blocks.py checks every decoder against gguf-py's dequantize.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QK_K = 256  # the k-quants' super-block


@dataclass
class Blocks:
    """Weights [rows, cols] as `scale * (codes - zp) + offset` per block of `block` columns."""

    bits: int  # 4 or 8: the kernel's code width (zp = 8 or 128)
    block: int
    codes: np.ndarray  # uint8 [rows, cols], unpacked
    scale: np.ndarray  # float32 [rows, cols / block]
    offset: np.ndarray | None  # float32 [rows, cols / block]; None: exactly zero (symmetric)
    source: str  # the GGUF type these came from, for the report

    @property
    def zp(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def dequantize(self) -> np.ndarray:
        rows, cols = self.codes.shape
        c = self.codes.reshape(rows, cols // self.block, self.block).astype(np.float32) - self.zp
        w = c * self.scale[..., None]
        if self.offset is not None:
            w = w + self.offset[..., None]
        return w.reshape(rows, cols)

    def take(self, rows: np.ndarray) -> "Blocks":
        return Blocks(self.bits, self.block, self.codes[rows], self.scale[rows],
                      None if self.offset is None else self.offset[rows], self.source)

    def as_format(self, bits: int, block: int) -> "Blocks":
        """The same weights with wider codes and/or smaller blocks (both exact: codes shift by a constant,
        a block's scale and offset repeat over its sub-blocks)."""
        if bits < self.bits or block > self.block or self.block % block:
            raise ValueError(f"cannot express {self.bits}-bit blocks of {self.block} as {bits}-bit blocks of {block}")
        codes = self.codes if bits == self.bits else (self.codes.astype(np.int16) + ((1 << (bits - 1)) - self.zp)).astype(np.uint8)
        rep = self.block // block
        scale = np.repeat(self.scale, rep, axis=1)
        offset = None if self.offset is None else np.repeat(self.offset, rep, axis=1)
        return Blocks(bits, block, codes, scale, offset, self.source)


def concat_rows(parts: list[Blocks]) -> Blocks:
    """Stack blocks along rows (packed QKV, gate/up) in their common exact format: the widest codes and
    the smallest block (a Q4_K q with a Q6_K v become 8-bit blocks of 16)."""
    bits, block = max(p.bits for p in parts), min(p.block for p in parts)
    parts = [p.as_format(bits, block) for p in parts]
    if any(p.offset is not None for p in parts):
        offset = np.concatenate([np.zeros_like(p.scale) if p.offset is None else p.offset for p in parts])
    else:
        offset = None
    source = "+".join(dict.fromkeys(p.source for p in parts))
    return Blocks(bits, block, np.concatenate([p.codes for p in parts]), np.concatenate([p.scale for p in parts]),
                  offset, source)


# ------------------------------------------------------------------------------------------- decoders
def _f16(raw: np.ndarray, at: int) -> np.ndarray:
    return np.ascontiguousarray(raw[:, at:at + 2]).view(np.float16)[:, 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """Q4_0/Q4_1/Q5_x blocks of 32: element j < 16 is byte j's low nibble, element 16 + j its high one."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _bits32(raw: np.ndarray, at: int) -> np.ndarray:
    """The 32 single bits of a little-endian u32 at `at`, element j = bit j: [n, 32]."""
    qh = np.ascontiguousarray(raw[:, at:at + 4]).view("<u4")[:, 0]
    return ((qh[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)


def _k_scales(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K: eight 6-bit scales and eight 6-bit mins packed into 12 bytes. Sub-blocks 0-3 use the low
    6 bits of bytes 0-3 (scales) and 4-7 (mins); 4-7 take their low 4 bits from bytes 8-11 and their top 2
    bits from the spare top bits of bytes 0-3 (scales) and 4-7 (mins)."""
    s = scales.astype(np.uint8)
    lo_sc, lo_m, hi = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = np.concatenate([lo_sc & 63, (hi & 15) | ((lo_sc >> 6) << 4)], axis=1)
    mn = np.concatenate([lo_m & 63, (hi >> 4) | ((lo_m >> 6) << 4)], axis=1)
    return sc.astype(np.float32), mn.astype(np.float32)


def _k_nibbles(qs: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K low bits: 128 bytes in 4 groups of 32; sub-block 2g is group g's low nibbles, 2g+1 its high."""
    g = qs.reshape(-1, 4, 32)
    return np.stack([g & 0x0F, g >> 4], axis=2).reshape(-1, QK_K)


# Each decoder: raw bytes [n_blocks, bytes_per_block] -> (q [n, elems], s [n, sub], mn [n, sub] | None, z, sub size)
def _q4_0(raw):
    return _nibbles(raw[:, 2:18]), _f16(raw, 0)[:, None], None, 8, 32


def _q4_1(raw):
    return _nibbles(raw[:, 4:20]), _f16(raw, 0)[:, None], _f16(raw, 2)[:, None], 0, 32


def _q5_0(raw):
    return _nibbles(raw[:, 6:22]) | (_bits32(raw, 2) << 4), _f16(raw, 0)[:, None], None, 16, 32


def _q5_1(raw):
    return _nibbles(raw[:, 8:24]) | (_bits32(raw, 4) << 4), _f16(raw, 0)[:, None], _f16(raw, 2)[:, None], 0, 32


def _q8_0(raw):
    q = np.ascontiguousarray(raw[:, 2:34]).view(np.int8).astype(np.int16)
    return q, _f16(raw, 0)[:, None], None, 0, 32


def _q4_k(raw):
    d, dmin = _f16(raw, 0), _f16(raw, 2)
    sc, m = _k_scales(raw[:, 4:16])
    return _k_nibbles(raw[:, 16:144]), d[:, None] * sc, -(dmin[:, None] * m), 0, 32


def _q5_k(raw):
    d, dmin = _f16(raw, 0), _f16(raw, 2)
    sc, m = _k_scales(raw[:, 4:16])
    qh = raw[:, 16:48]  # bit j of byte l is the high bit of element l of sub-block j
    high = ((qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1).reshape(-1, QK_K)
    return _k_nibbles(raw[:, 48:176]) | (high << 4), d[:, None] * sc, -(dmin[:, None] * m), 0, 32


def _q6_k(raw):
    ql, qh = raw[:, 0:128], raw[:, 128:192]
    sc = np.ascontiguousarray(raw[:, 192:208]).view(np.int8).astype(np.float32)
    d = _f16(raw, 208)
    # Two halves of 128 elements. In half h, 64 bytes of ql hold elements 0-63 (low nibbles) and 64-127
    # (high nibbles); 32 bytes of qh hold the top 2 bits of elements 0-31, 32-63, 64-95, 96-127 in bit
    # pairs 0-1, 2-3, 4-5, 6-7.
    low = ql.reshape(-1, 2, 1, 64) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    low = (low & 0x0F).reshape(-1, 2, 128)
    high = qh.reshape(-1, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    high = (high & 0x03).reshape(-1, 2, 128)
    return (low | (high << 4)).reshape(-1, QK_K), d[:, None] * sc, None, 32, 16


# name -> (decoder, elements per block, bytes per block, kernel bits)
FORMATS = {
    "Q4_0": (_q4_0, 32, 18, 4), "Q4_1": (_q4_1, 32, 20, 4), "Q4_K": (_q4_k, QK_K, 144, 4),
    "Q5_0": (_q5_0, 32, 22, 8), "Q5_1": (_q5_1, 32, 24, 8), "Q5_K": (_q5_k, QK_K, 176, 8),
    "Q6_K": (_q6_k, QK_K, 210, 8), "Q8_0": (_q8_0, 32, 34, 8),
}


def decode(raw: np.ndarray, qtype: str, shape: tuple[int, int]) -> Blocks:
    """The blocks of one GGUF tensor: `raw` its bytes (any shape), `shape` its [rows, cols] (cols = ne0)."""
    if qtype not in FORMATS:
        raise KeyError(qtype)
    fn, per_block, nbytes, bits = FORMATS[qtype]
    rows, cols = shape
    if cols % per_block or np.asarray(raw).size != rows * cols // per_block * nbytes:
        raise ValueError(f"{qtype} tensor of shape {shape}: {np.asarray(raw).size} bytes do not make whole blocks")
    q, s, mn, z, sub = fn(np.asarray(raw, dtype=np.uint8).reshape(-1, nbytes))
    zp = 1 << (bits - 1)
    shift = 0 if bits == 4 else zp - (z if mn is None else 0)  # keeps codes in 0..2^bits-1
    codes = (q.astype(np.int16) + shift).astype(np.uint8).reshape(rows, cols)
    s = s.astype(np.float32)
    const = np.float32(zp - z - shift)  # offset = mn + s * (zp - z - shift)
    if mn is None and const == 0:
        offset = None
    else:
        offset = (s * const if mn is None else mn.astype(np.float32) + s * const).astype(np.float32).reshape(rows, -1)
    return Blocks(bits, sub, codes, s.reshape(rows, -1), offset, qtype)
