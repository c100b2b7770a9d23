"""Device-fit checks for NPU graphs: static shapes, supported operators, size.

An NPU compiler rejects a graph late and vaguely (or, with CPU fallback, silently runs part of it
on the CPU). These checks run at export and name the node and the reason instead.
"""
from __future__ import annotations

from pathlib import Path

import onnx

from edge_sdk.errors import DeviceFitError

# Standard-domain ONNX operators the QNN execution provider can hand to the HTP backend
# (onnxruntime's QNN EP op-builder registry and its "Supported ONNX operators" documentation).
# Contrib (com.microsoft) operators are rejected as a class: the static flavour must not use them.
QNN_HTP_OPS = frozenset("""
Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Conv ConvTranspose Cos
CumSum DepthToSpace DequantizeLinear Div Einsum Elu Equal Exp Expand Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
HardSigmoid HardSwish Identity InstanceNormalization LayerNormalization LeakyRelu Less LessOrEqual Log
LogSoftmax LpNormalization LRN MatMul Max MaxPool Mean Min Mod Mul Neg Not Or Pad Pow PRelu
QuantizeLinear ReduceL2 ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum Reciprocal Relu Reshape
Resize Round ScatterElements ScatterND Sigmoid Sign Sin Slice Softmax Softplus SpaceToDepth Split Sqrt
Squeeze Sub Sum Tanh Tile TopK Transpose Unsqueeze Where Xor
""".split())

TARGET_OPS = {"qnn-htp": QNN_HTP_OPS}

# onnxruntime contrib operators registered in the default domain (so the domain test misses them).
ORT_DEFAULT_DOMAIN_CONTRIB = frozenset({"SimplifiedLayerNormalization"})

# Inputs that decide an output's shape: a graph is only static if these are constants.
_SHAPE_INPUTS = {"Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Split": (1,),
                 "Pad": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceSum": (1,), "Squeeze": (1,), "Unsqueeze": (1,)}

MAX_GRAPH_BYTES = 2 * 1024 ** 3  # protobuf limit and QNN's per-graph limit


def check_graph(model: onnx.ModelProto, target: str = "qnn-htp", path: Path | None = None) -> None:
    """Raise DeviceFitError at the first thing `target` cannot run; `path` locates external data."""
    if target not in TARGET_OPS:
        raise ValueError(f"unknown NPU target {target!r}; known: {', '.join(TARGET_OPS)}")
    where = f"{path.name}: " if path else ""
    g = model.graph
    for vi in list(g.input) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if not dims and not vi.type.tensor_type.HasField("shape"):
            raise DeviceFitError(f"{where}graph {vi.name!r} has no shape; NPU graphs need fully static shapes")
        for j, d in enumerate(dims):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise DeviceFitError(
                    f"{where}graph input/output {vi.name!r} has dynamic dimension {j} ({d.dim_param or '?'}); "
                    "NPU graphs need fully static shapes - export with the 'static' flavour")
    constants = {t.name for t in g.initializer}
    constants |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    supported = TARGET_OPS[target]
    for node in g.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in ORT_DEFAULT_DOMAIN_CONTRIB:
            raise DeviceFitError(
                f"{where}node {node.name!r} is {node.domain or 'com.microsoft'}:{node.op_type}, an onnxruntime contrib operator {target} does not "
                "run; export with the 'static' flavour (standard ONNX operators only)")
        if node.op_type not in supported:
            raise DeviceFitError(f"{where}node {node.name!r}: operator {node.op_type} is not supported by {target}")
        for k in _SHAPE_INPUTS.get(node.op_type, ()):
            if k < len(node.input) and node.input[k] and node.input[k] not in constants:
                raise DeviceFitError(
                    f"{where}node {node.name!r} ({node.op_type}) takes its shape/axes from the computed tensor "
                    f"{node.input[k]!r}; NPU graphs need constant shapes")
    size = graph_bytes(model, path)
    if size >= MAX_GRAPH_BYTES:
        raise DeviceFitError(f"{where}graph is {size / 1e9:.2f} GB; QNN graphs must be < 2 GB - use a smaller "
                             "model or a 4-bit recipe")


def graph_bytes(model: onnx.ModelProto, path: Path | None = None) -> int:
    """Bytes of the graph: the protobuf plus the external data its initializers point at (their
    lengths when recorded: several graphs may share one weights file; else the whole file)."""
    size = model.ByteSize()
    whole = set()
    for t in model.graph.initializer:
        info = {e.key: e.value for e in t.external_data}
        if "length" in info:
            size += int(info["length"])
        elif "location" in info:
            whole.add(info["location"])
    for f in whole:
        if path is not None and (path.parent / f).exists():
            size += (path.parent / f).stat().st_size
    return size
