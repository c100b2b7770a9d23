"""A tiny ONNX graph builder: nodes, initializers and I/O with generated names.

Emitters describe the computation with `op(...)`; names are generated (`{prefix}/{op}_{n}`) so
a graph can be read node by node in Netron with its layer prefix.

Given a `weights_file`, every initializer of `EXTERNAL_MIN_BYTES` or more is written to that file as it
is added and the graph keeps only its location: the weights leave memory one tensor at a time, and a
1.1B model's graph never holds its ~0.7 GB of weights at once (exporters/bundle.save_onnx then writes
the small rest). Without one, the graph holds its weights (the static flavour and onnxruntime's
quantizer rewrite them in memory).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ONNX_OPSET = 21
MS_DOMAIN = "com.microsoft"

EXTERNAL_MIN_BYTES = 1024  # as bundle.save_onnx's size_threshold: smaller tensors stay in the graph file
ALIGN = 64  # bytes between tensors in the weights file: aligned loads for any kernel that reads it in place

DTYPES = {
    np.dtype("float32"): TensorProto.FLOAT, np.dtype("float16"): TensorProto.FLOAT16,
    np.dtype("int64"): TensorProto.INT64, np.dtype("int32"): TensorProto.INT32,
    np.dtype("uint8"): TensorProto.UINT8, np.dtype("int8"): TensorProto.INT8,
    np.dtype("uint16"): TensorProto.UINT16, np.dtype("int16"): TensorProto.INT16, np.dtype("bool"): TensorProto.BOOL,
}


class GraphBuilder:
    def __init__(self, name: str = "decoder", weights_file: str | Path | None = None):
        self.name = name
        self._data = open(weights_file, "wb") if weights_file is not None else None  # noqa: SIM115 (closed in model())
        self._location = Path(weights_file).name if weights_file is not None else None
        self._digests: dict[str, bytes] = {}  # name -> sha256 of an initializer already written out
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
        array = np.ascontiguousarray(array)
        if self._data is not None and array.nbytes >= EXTERNAL_MIN_BYTES:
            return self._external(name, array)
        tensor = numpy_helper.from_array(array, name)
        if name in self._weights:
            if self._weights[name].SerializeToString() != tensor.SerializeToString():
                raise ValueError(f"initializer {name!r} added twice with different contents")
            return name
        self._weights[name] = tensor
        self.initializers.append(tensor)
        return name

    def _external(self, name: str, array: np.ndarray) -> str:
        """Write `array` to the weights file now; the graph gets a tensor that points at it."""
        digest = hashlib.sha256(array.dtype.str.encode() + repr(array.shape).encode())
        digest.update(memoryview(array).cast("B"))
        digest = digest.digest()
        if name in self._digests:
            if self._digests[name] != digest:
                raise ValueError(f"initializer {name!r} added twice with different contents")
            return name
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)  # ONNX stores little-endian bytes
        f = self._data
        offset = -f.tell() % ALIGN + f.tell()
        f.write(b"\0" * (offset - f.tell()))
        f.write(memoryview(array).cast("B"))  # the tensor's bytes, little-endian as ONNX stores them
        tensor = onnx.TensorProto(name=name, data_type=DTYPES[array.dtype], dims=list(array.shape))
        # By hand: onnx's set_external_data wants the bytes in the proto first, which is what streaming avoids.
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self._location), ("offset", offset), ("length", array.nbytes)):
            tensor.external_data.add(key=key, value=str(value))
        self._digests[name] = digest
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
        if self._data is not None:  # every large weight is on disk; the model is written next to it
            self._data.close()
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        opsets = [helper.make_opsetid("", ONNX_OPSET)]
        if any(n.domain == MS_DOMAIN for n in self.nodes):
            opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="edge-sdk")
        model.ir_version = 10
        for k, v in (metadata or {}).items():
            model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=str(v)))
        return model
