"""The "static" flavour: standard ONNX ops, every dimension fixed - what NPUs (QNN HTP) accept.

One architecture description gives two graphs that differ only in the sequence length S:
a prefill-chunk graph (S = the device profile's ``prefill_chunk``) and a 1-token decode graph.
Both attend over a fixed-size KV buffer of C = ``max_context`` positions owned by the host.

    inputs   input_ids        int64   [1, S]
             position_ids     int64   [1, S]        absolute positions (host computes; pads clipped)
             attention_mask   float32 [1, 1, S, C+S] additive: 0 = attend, mask_value = do not
             past_key_values.{i}.key|value  float32 [1, kvH, C, D]   the host's whole buffer
    outputs  logits           float32 [1, S, V]
             present.{i}.key|value          float32 [1, kvH, S, D]   ONLY the S new entries

Keys are [past buffer (C) | new tokens (S)], so the mask's first C columns say which buffer
positions are filled and the last S columns are the causal triangle. The host copies the new
entries into its buffer at its offset; the graph never scatters (no dynamic indexing on the NPU).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_sdk.exporters.architectures import DecoderArgs

from .decoder import FLAVOURS, DecoderOps, emit_decoder, rope_cache
from .io import KEEP_FLOAT, kv_names

# Additive mask value for hidden positions. Not -inf: a 16-bit quantized graph spreads its
# activation grid over the mask's range, so a huge value would crush the resolution of the
# attention scores it is added to. exp(-100) is already 0 in float32 for any sane score range.
MASK_VALUE = -100.0


class StaticOps(DecoderOps):
    """Static-shape flavour over standard ONNX ops (see the module docstring for the I/O)."""

    flavour = "static"

    def __init__(self, args: DecoderArgs, weights: Mapping[str, np.ndarray], max_context: int, seq_len: int = 1,
                 **options):
        # `options` (linear=, embed_dtype=) go to DecoderOps; QDQ recipes want the fp32 defaults.
        super().__init__(args, weights, max_context, **options)
        self.window_mask: str | None = None
        self.seq_len = seq_len

    def declare_io(self) -> str:
        a, b, S, C = self.args, self.b, self.seq_len, self.max_context
        kvh, d = a.num_key_value_heads, a.head_dim
        ids = b.input("input_ids", np.int64, [1, S])
        pos = b.input("position_ids", np.int64, [1, S])
        b.input("attention_mask", np.float32, [1, 1, S, C + S])
        for i in range(a.num_hidden_layers):
            for name in kv_names(i, "past").values():
                b.input(name, np.float32, [1, kvh, C, d])
        b.output("logits", np.float32, [1, S, a.vocab_size])
        for i in range(a.num_hidden_layers):
            for name in kv_names(i, "present").values():
                b.output(name, np.float32, [1, kvh, S, d])
        # RoPE tables gathered once per graph by position: [C, D/2] -> [1, 1, S, D/2], shared by all layers.
        shape = b.const([1, 1, S, a.rotary_dim // 2])
        self.tables = {}  # local (sliding layers' own RoPE base) -> (cos, sin) at these positions
        for local in sorted({a.is_sliding(i) for i in range(a.num_hidden_layers)}):
            cos, sin = rope_cache(a, C, local=local)
            tag = "local_" if local else ""
            self.tables[local] = tuple(
                b.op("Reshape", [b.op("Gather", [b.weight(f"rope.{tag}{kind}_cache", t), pos]), shape])
                for kind, t in (("cos", cos), ("sin", sin)))
        if a.has_sliding_layers and C > a.sliding_window:
            self.window_mask = self._window_mask(pos)
        return ids

    def _window_mask(self, pos: str) -> str:
        """The host's mask, also hiding keys a sliding layer no longer sees: key position k is hidden from
        query position p when p - k >= sliding_window. Buffer slot j holds position j; the new keys sit at
        `position_ids`. Built once per graph, in float (positions < 2^24 are exact)."""
        b, S, C = self.b, self.seq_len, self.max_context
        start = len(b.nodes)
        q = b.op("Cast", [pos], to=1)  # [1, S]
        keys = b.op("Concat", [b.const(np.arange(C, dtype=np.float32)[None], np.float32), q], axis=1)  # [1, C+S]
        dist = b.op("Sub", [b.op("Reshape", [q, b.const([1, 1, S, 1])]), b.op("Reshape", [keys, b.const([1, 1, 1, C + S])])])
        far = b.op("GreaterOrEqual", [dist, b.const(float(self.args.sliding_window), np.float32)])
        mask = b.op("Where", [far, b.const(MASK_VALUE, np.float32), "attention_mask"])
        for node in b.nodes[start:]:
            node.doc_string = KEEP_FLOAT
        return mask

    def norm(self, x, residual, weight):
        """RMSNorm(x + residual) spelled out in standard ops, safe in float16 and marked to stay float.

        The residual stream of real models carries "massive activations" (SmolLM2-135M: |x| up to
        ~25000 on the attention-sink token from layer 11 on, ~1 elsewhere). One 16-bit range per
        tensor cannot hold both, so the residual adds and the norm up to the weight multiply are
        tagged KEEP_FLOAT: exporters/qdq.py leaves them unquantized and the HTP runs them in fp16.
        fp16 overflows at 65504, so x*x is not taken on x itself: x is first divided by its
        per-token max |x| (m), and x / sqrt(mean(x^2) + eps) = xs / sqrt(mean(xs^2) + eps/m^2)
        with xs = x/m in [-1, 1], mean(xs^2) >= 1/hidden. Same value in fp32 up to rounding.
        fp16 also has a floor: see below for why no divisor may exceed ~16000.
        """
        b = self.b
        start = len(b.nodes)
        if residual is not None:
            x = b.op("Add", [x, residual])
        axes = b.const([-1])
        m = b.op("Max", [b.op("ReduceMax", [b.op("Abs", [x]), axes], keepdims=1), b.const(1e-4, np.float32)])
        # x / m as (x / sqrt(m)) / sqrt(m): on the sink token m ~ 25000, and the HTP divides by
        # multiplying with the reciprocal, 1/25000 being an fp16 subnormal it flushes to zero; that
        # zeroed the sink row from layer 12 on, and with it the keys and values every later token
        # attends to (SmolLM2-135M: logit cosine 0.84 vs fp32 on the simulated HTP). sqrt(m) <= 256
        # keeps every reciprocal a normal fp16 number.
        s = b.op("Sqrt", [m])
        xs = b.op("Div", [b.op("Div", [x, s]), s])
        ms = b.op("ReduceMean", [b.op("Mul", [xs, xs]), axes], keepdims=1)
        # eps/m^2 as (sqrt(eps)/m)^2: it underflows only when m > ~0.4, where it is < 6e-5 against
        # mean(xs^2) >= 1/hidden.
        t = b.op("Div", [b.op("Div", [b.const(float(self.args.rms_norm_eps) ** 0.5, np.float32), s]), s])
        eps = b.op("Mul", [t, t])
        normed = b.op("Div", [xs, b.op("Sqrt", [b.op("Add", [ms, eps])])])
        for node in b.nodes[start:]:
            node.doc_string = KEEP_FLOAT
        return b.op("Mul", [normed, weight]), x

    def gelu_tanh(self, x: str) -> str:
        """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) in elementary ops: QNN's Gelu is the erf form."""
        b = self.b
        cube = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Mul", [b.op("Add", [x, b.op("Mul", [cube, b.const(0.044715, np.float32)])]),
                             b.const(float(np.sqrt(2 / np.pi)), np.float32)])
        half = b.op("Mul", [x, b.const(0.5, np.float32)])
        return b.op("Mul", [half, b.op("Add", [b.op("Tanh", [inner]), b.const(1.0, np.float32)])])

    def _heads(self, x: str, n_heads: int) -> str:
        """[1, S, n*D] -> [1, n, S, D]."""
        b, a = self.b, self.args
        x = b.op("Reshape", [x, b.const([1, self.seq_len, n_heads, a.head_dim])])
        return b.op("Transpose", [x], perm=[0, 2, 1, 3])

    def _normed_heads(self, x: str, n_heads: int, logical: str, i: int, scale: float = 1.0) -> str:
        """[1, S, n*D] -> RMSNorm over each head's D (weight * scale) -> [1, n, S, D]."""
        b, a = self.b, self.args
        x = b.op("Reshape", [x, b.const([1, self.seq_len, n_heads, a.head_dim])])
        x, _ = self.norm(x, None, self.norm_weight(logical, i, scale))  # the float-safe RMSNorm, over one head's D
        return b.op("Transpose", [x], perm=[0, 2, 1, 3])

    def _rope(self, x: str, i: int, out: str | None = None) -> str:
        """rotate_half RoPE on [1, n, S, D]: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)."""
        b, a = self.b, self.args
        half = a.rotary_dim // 2
        cos, sin = self.tables[a.is_sliding(i)]
        x1 = b.op("Slice", [x, b.const([0]), b.const([half]), b.const([3])])
        x2 = b.op("Slice", [x, b.const([half]), b.const([2 * half]), b.const([3])])
        lo = b.op("Sub", [b.op("Mul", [x1, cos]), b.op("Mul", [x2, sin])])
        hi = b.op("Add", [b.op("Mul", [x2, cos]), b.op("Mul", [x1, sin])])
        parts = [lo, hi]
        if a.rotary_dim < a.head_dim:  # partial rotary: the rest of each head passes through
            parts.append(b.op("Slice", [x, b.const([2 * half]), b.const([a.head_dim]), b.const([3])]))
        return b.op("Concat", parts, axis=3, outputs=[out] if out else None)

    def _proj(self, x: str, logical: str, i: int, scale: float = 1.0) -> str:
        b, a = self.b, self.args
        w = self.tensor(logical, i) * scale
        y = self.matmul(x, b.weight(f"model.layers.{i}.self_attn.{logical}_proj.MatMul.weight", w.T))
        if a.attention_bias:
            y = b.op("Add", [y, b.weight(f"model.layers.{i}.self_attn.{logical}_proj.bias", self.tensor(f"{logical}_bias", i) * scale)])
        return y

    def attention(self, x, i):
        a, b, S, C = self.args, self.b, self.seq_len, self.max_context
        hq, kvh, d = a.num_attention_heads, a.num_key_value_heads, a.head_dim
        group = hq // kvh
        past, present = kv_names(i, "past"), kv_names(i, "present")
        scale = a.softmax_scale
        if a.qk_norm:  # Qwen3, Gemma 3: RMSNorm of each head before RoPE; the softmax scale folded into q's norm
            q = self._rope(self._normed_heads(self._proj(x, "q", i), hq, "q_norm", i, scale), i)
            k = self._rope(self._normed_heads(self._proj(x, "k", i), kvh, "k_norm", i), i, out=present["key"])
        else:
            # The softmax scale folded into the q projection (RoPE is linear, so it commutes): one op fewer.
            q = self._rope(self._heads(self._proj(x, "q", i, scale=scale), hq), i)  # [1, Hq, S, D]
            k = self._rope(self._heads(self._proj(x, "k", i), kvh), i, out=present["key"])  # [1, kvH, S, D]
        v = b.op("Transpose", [b.op("Reshape", [self._proj(x, "v", i), b.const([1, S, kvh, d])])],
                 perm=[0, 2, 1, 3], outputs=[present["value"]])
        keys = b.op("Concat", [past["key"], k], axis=2)  # [1, kvH, C+S, D]
        values = b.op("Concat", [past["value"], v], axis=2)
        # GQA without copying KV heads: the `group` query heads sharing a KV head become extra query
        # rows ([1, Hq, S, D] -> [1, kvH, group*S, D]), so one batched MatMul per KV head does it.
        qg = b.op("Reshape", [q, b.const([1, kvh, group * S, d])])
        keys_t = b.op("Transpose", [keys], perm=[0, 1, 3, 2])
        start = len(b.nodes)
        scores = b.op("MatMul", [qg, keys_t])  # [1, kvH, g*S, C+S]
        mask = self.window_mask if a.is_sliding(i) and self.window_mask else "attention_mask"
        scores = b.op("Add", [b.op("Reshape", [scores, b.const([1, hq, S, C + S])]), mask])
        probs = b.op("Reshape", [b.op("Softmax", [scores], axis=-1), b.const([1, kvh, group * S, C + S])])
        ctx = b.op("MatMul", [probs, values])  # [1, kvH, g*S, D]
        # The attention core stays float (fp16 on the HTP). The simulated HTP's MatMul of two 16-bit
        # activations (Q.K^T, P.V) is ~40 dB off exact QDQ arithmetic, as if one operand had 8 bits,
        # and softmax amplifies it (SmolLM2-135M layer 0: scores 41.6 dB, probs 34.8 dB, against
        # >74 dB for every node before; logit cosine vs fp32 0.84). fp16 keeps what 16-bit QDQ promised.
        for node in b.nodes[start:]:
            node.doc_string = KEEP_FLOAT
        ctx = b.op("Transpose", [b.op("Reshape", [ctx, b.const([1, hq, S, d])])], perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, b.const([1, S, hq * d])])
        return self.matmul(ctx, self.linear_weight(f"model.layers.{i}.attn.o_proj.MatMul.weight", "o", layer=i))


FLAVOURS["static"] = StaticOps


def emit_static(args: DecoderArgs, weights: Mapping[str, np.ndarray], seq_len: int, max_context: int):
    """The static graph for one sequence length (the chunk for prefill, 1 for decode), fp32 weights."""
    # emit_decoder builds a flavour as FLAVOURS[name](args, weights, max_context) and has no slot for
    # the static flavour's extra dimension, so the length is bound in a variant registered only for
    # this call (remove this once emit_decoder forwards flavour options).
    key = f"static@{seq_len}"
    FLAVOURS[key] = lambda a, w, c, **options: StaticOps(a, w, c, seq_len=seq_len, **options)
    try:
        model = emit_decoder(args, weights, key, max_context)
    finally:
        del FLAVOURS[key]
    for prop in model.metadata_props:
        if prop.key == "edge_sdk.flavour":
            prop.value = "static"
    return model


def export_static(args: DecoderArgs, weights: Mapping[str, np.ndarray], out_dir: Path, chunk: int,
                  max_context: int, recipe: str = "fp32", calibration_ids: Sequence[Sequence[int]] | None = None,
                  target: str = "qnn-htp", progress=None) -> dict:
    """Write ``prefill.onnx`` and ``decode.onnx`` into `out_dir`; return the manifest fragment.

    `recipe` is "fp32" or a QDQ recipe of exporters/qdq.py ("w8a16-qdq", "w4a16-qdq"); QDQ recipes
    calibrate on `calibration_ids` (token-id sequences, a few hundred tokens in all) run through the
    fp32 graphs. Both graphs are checked for NPU fit (static shapes, op list, size) before returning.
    The fragment has the ``graph``, ``kv_cache`` and ``quantization`` sections of edge_manifest.json.
    """
    import onnx

    from edge_sdk.exporters import npu_check, qdq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"prefill": "prefill.onnx", "decode": "decode.onnx"}
    fp32_dir = out_dir if recipe == "fp32" else out_dir / ".fp32"
    fp32_dir.mkdir(exist_ok=True)
    if progress is not None:
        progress.stage(f"emitting the static graphs: prefill chunk {chunk}, decode 1, context {max_context}")
    for kind, s in (("prefill", chunk), ("decode", 1)):
        qdq.save_model(emit_static(args, weights, s, max_context), fp32_dir / files[kind])
    fragment = manifest_fragment(args, files, chunk, max_context)
    if recipe == "fp32":
        fragment["quantization"] = {"recipe": "fp32"}
    else:
        if not calibration_ids:
            raise ValueError(f"recipe {recipe!r} needs calibration_ids (a few hundred tokens of varied text)")
        fragment["quantization"] = qdq.quantize_static_pair(
            fp32_dir, out_dir, fragment, recipe, calibration_ids, progress=progress)
        for f in files.values():
            (fp32_dir / f).unlink()
            data = fp32_dir / (f + ".data")
            if data.exists():
                data.unlink()
        fp32_dir.rmdir()
    from edge_sdk.exporters.bundle import save_onnx_shared

    # Both graphs hold the same weights: store them once (prefill.onnx/decode.onnx point into one file).
    shared = save_onnx_shared([out_dir / f for f in files.values()], data_name="weights.data")
    fragment["graph"]["weights_file"] = {"file": "weights.data", **shared}
    if progress is not None:
        progress.stage(f"checking both graphs for {target}: static shapes, operators, size")
    for f in files.values():
        npu_check.check_graph(onnx.load(str(out_dir / f), load_external_data=False), target, out_dir / f)
    return fragment


def manifest_fragment(args: DecoderArgs, files: dict[str, str], chunk: int, max_context: int) -> dict:
    """The ``graph`` and ``kv_cache`` manifest sections the StaticEngine reads."""
    return {
        "graph": {
            "flavour": "static",
            "files": dict(files),
            "prefill_chunk": chunk,
            "max_context": max_context,
            "inputs": {"input_ids": "input_ids", "position_ids": "position_ids", "attention_mask": "attention_mask"},
            "mask_value": MASK_VALUE,
        },
        "kv_cache": {
            "num_layers": args.num_hidden_layers,
            "num_kv_heads": args.num_key_value_heads,
            "head_dim": args.head_dim,
            "past": "past_key_values.{layer}.{kind}",
            "present": "present.{layer}.{kind}",
            "dtype": "float32",
            # The host owns a [1, kvH, max_context, D] buffer per layer/kind and writes each call's
            # present (only the new S entries) into it at its offset.
            "layout": "host-buffer",
        },
    }
