"""What onnxruntime's MatMulNBits holds in memory for one weight, and what one call costs (Linux).

    .venv/bin/python benchmarks/pack_size.py [--bits 8] [--rows 49152] [--cols 576] [--accuracy-level 4]

Builds a one-node graph: y = x @ W^T, with W a [rows, cols] matrix of random `--bits` codes in blocks of 32
and fp32 scales, stored as external data (as a bundle stores it). In a fresh process, it prints the bytes
on disk, the anonymous memory the session holds after creation (RssAnon from /proc/self/status), and the
median time of a one-row call. The session figure is mostly the packed copy, plus about 1.4 MB that any
session holds: the 8-bit head at accuracy level 0, which packs nothing, shows that amount. The default is
SmolLM2's int8 lm_head. For a 4-bit body matrix, pass `--bits 4 --rows 3072` (gate/up).

Measured 2026-12-02 (docs/benchmarks.md, "Peak RSS"), net of that 1.4 MB:
- accuracy level 4: the head is 30.4 MB on disk and 37 MB packed (1.22x); 4-bit matrices pack to 1.4x;
- accuracy level 0: the head is not packed, but one call takes 144–163 ms instead of 1–1.6 ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_anon_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _measure(args) -> int:
    import numpy as np
    import onnxruntime as ort

    before = rss_anon_mb()
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.measure), so, providers=["CPUExecutionProvider"])
    held = rss_anon_mb() - before
    x = np.random.default_rng(1).standard_normal((1, 1, args.cols)).astype(np.float32)
    for _ in range(3):
        session.run(None, {"x": x})
    times = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    print(json.dumps([held, statistics.median(times) * 1e3, ort.__version__]))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", type=int, choices=(4, 8), default=8)
    p.add_argument("--rows", type=int, default=49152, help="output features N (default: SmolLM2's vocabulary)")
    p.add_argument("--cols", type=int, default=576, help="input features K, a multiple of 32 (default 576)")
    p.add_argument("--accuracy-level", type=int, choices=(0, 1, 2, 3, 4), default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process: open this graph
    args = p.parse_args()
    if args.measure:
        return _measure(args)
    if args.cols % 32 or args.rows < 1:
        p.error("--cols must be a multiple of 32 and --rows positive")
    if not Path("/proc/self/status").exists():
        p.error("this reads /proc/self/status: Linux only")

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    block, nb = 32, args.cols // 32
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (args.rows, nb, block * args.bits // 8), dtype=np.uint8)
    scales = rng.random(args.rows * nb, dtype=np.float32)
    node = helper.make_node("MatMulNBits", ["x", "B", "scales"], ["y"], domain="com.microsoft", K=args.cols,
                            N=args.rows, bits=args.bits, block_size=block, accuracy_level=args.accuracy_level)
    graph = helper.make_graph([node], "one_weight", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, args.cols])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, args.rows])],
                              [numpy_helper.from_array(codes, "B"), numpy_helper.from_array(scales, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    on_disk = (codes.nbytes + scales.nbytes) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, location="w.onnx.data")
        # Measured in a fresh process: here, freed arrays and protobuf bytes would be reused by the session.
        out = subprocess.run([sys.executable, __file__, "--measure", str(path), "--threads", str(args.threads),
                              "--calls", str(args.calls), "--cols", str(args.cols)],
                             capture_output=True, text=True, check=True)
    held, ms, version = json.loads(out.stdout)
    print(f"MatMulNBits {args.bits}-bit [{args.rows} x {args.cols}], blocks of 32, accuracy level {args.accuracy_level}, "
          f"onnxruntime {version}: {on_disk:.1f} MB on disk (codes + fp32 scales), session holds "
          f"+{held:.1f} MB anonymous ({held / on_disk:.2f}x), one-row call {ms:.3f} ms (median of {args.calls})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
