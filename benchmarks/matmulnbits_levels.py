"""One MatMulNBits call per weight format and accuracy level: is there a fast kernel for fp32 activations?

    .venv/bin/python benchmarks/matmulnbits_levels.py [--k 1152] [--n 6912] [--threads 2]

A one-node graph (random codes and scales, no zero points), one token (M=1), K inputs -> N outputs; prints the
mean time of 30 calls after 3 untimed ones for 4-bit blocks of 32 and 8-bit blocks of 32 and 16 (the layouts a
GGUF's Q4_x / Q5_0, Q8_0 / Q6_K blocks are imported into), each at accuracy level 0 (fp32 activations) and 4
(int8 activations). The defaults are Gemma 3 1B's gate/up shape. Measured numbers: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def graph(k: int, n: int, bits: int, block: int, level: int, rng: np.random.Generator) -> bytes:
    blocks = k // block
    codes = rng.integers(0, 256, size=(n, blocks, block * bits // 8), dtype=np.uint8)
    scales = rng.random((n * blocks,), dtype=np.float32) * 0.01
    node = helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n, bits=bits,
                            block_size=block, accuracy_level=level)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, k])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, n])],
                          [helper.make_tensor("B", TensorProto.UINT8, codes.shape, codes.tobytes(), raw=True),
                           helper.make_tensor("S", TensorProto.FLOAT, scales.shape, scales.tobytes(), raw=True)])
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(g, opset_imports=opsets).SerializeToString()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=1152)
    p.add_argument("--n", type=int, default=6912)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    x = rng.standard_normal((1, args.k), dtype=np.float32)
    print(f"MatMulNBits K={args.k} N={args.n}, one token, {args.threads} threads, onnxruntime {ort.__version__}")
    for bits, block in ((4, 32), (8, 32), (8, 16)):
        for level in (0, 4):
            s = ort.InferenceSession(graph(args.k, args.n, bits, block, level, rng), so,
                                     providers=["CPUExecutionProvider"])
            for _ in range(3):
                s.run(None, {"A": x})
            t, calls = time.perf_counter(), 30
            for _ in range(calls):
                s.run(None, {"A": x})
            print(f"{bits}-bit blocks of {block}, accuracy level {level}: "
                  f"{(time.perf_counter() - t) / calls * 1e3:.2f} ms per call")


if __name__ == "__main__":
    main()
