"""A tiny ONNX graph builder: nodes, initializers and I/O with generated names.

Emitters describe the computation with `op(...)`; names are generated (`{prefix}/{op}_{n}`) so
a graph can be read node by node in Netron with its layer prefix.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ONNX_OPSET = 21
MS_DOMAIN = "com.microsoft"

DTYPES = {
    np.dtype("float32"): TensorProto.FLOAT, np.dtype("float16"): TensorProto.FLOAT16,
    np.dtype("int64"): TensorProto.INT64, np.dtype("int32"): TensorProto.INT32,
    np.dtype("uint8"): TensorProto.UINT8, np.dtype("int8"): TensorProto.INT8,
    np.dtype("uint16"): TensorProto.UINT16, np.dtype("int16"): TensorProto.INT16, np.dtype("bool"): TensorProto.BOOL,
}


class GraphBuilder:
    def __init__(self, name: str = "decoder"):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._counter = 0
        self.prefix = ""
        self._consts: dict[tuple, str] = {}
        self._weights: dict[str, onnx.TensorProto] = {}

    def _name(self, base: str) -> str:
        self._counter += 1
        return f"{self.prefix}{base}_{self._counter}"

    def input(self, name: str, dtype, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, DTYPES[np.dtype(dtype)], list(shape)))
        return name

    def output(self, name: str, dtype, shape: Sequence[int | str]) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, DTYPES[np.dtype(dtype)], list(shape)))

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add an initializer under a stable, readable name (weights keep their HF-derived names).

        Two ops may read one weight (a tied embedding gathers from the head's table): adding the same
        name again with the same contents returns the name; different contents are a bug."""
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if name in self._weights:
            if self._weights[name].SerializeToString() != tensor.SerializeToString():
                raise ValueError(f"initializer {name!r} added twice with different contents")
            return name
        self._weights[name] = tensor
        self.initializers.append(tensor)
        return name

    def const(self, value, dtype=np.int64) -> str:
        """A small constant, deduplicated (shape vectors, axes, scalars)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.weight(f"const_{len(self._consts)}", arr)
        return self._consts[key]

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, domain: str = "",
           outputs: Sequence[str] | None = None, **attrs: Any) -> Any:
        """Append a node; returns its output name (or a list when n_out > 1)."""
        name = self._name(op_type)
        outs = list(outputs) if outputs else [f"{name}/out{i}" if n_out > 1 else f"{name}/out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, domain=domain or None, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def model(self, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        opsets = [helper.make_opsetid("", ONNX_OPSET)]
        if any(n.domain == MS_DOMAIN for n in self.nodes):
            opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="edge-sdk")
        model.ir_version = 10
        for k, v in (metadata or {}).items():
            model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=str(v)))
        return model
