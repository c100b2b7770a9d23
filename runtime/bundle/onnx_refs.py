"""Which files an ONNX graph makes onnxruntime open, read from its protobuf without the `onnx` package.

A graph names other files in two places: initializers with external data (`location`), and QNN
EPContext nodes that keep their context binary outside the graph (`embed_mode` 0,
`ep_cache_context`). Recent onnxruntime releases refuse external data outside the model's folder,
but not every release the runtime accepts does, and a file inside the folder that the manifest
does not list would load unverified. So the runtime reads the names first and requires each to be
a listed bundle file.

Only the protobuf wire format is parsed (varint keys, four wire types); payloads that cannot hold a
file reference (weights, docs, shapes) are skipped by their length, so a graph with embedded
weights is walked without copying them. Nesting is bounded.
"""
from __future__ import annotations

from edge_sdk.errors import BundleError

MAX_DEPTH = 64  # subgraphs inside subgraphs; real models nest a few levels at most

# Field numbers from onnx.proto (onnx/onnx, stable since IR version 3):
# message -> {field number: message type of that (length-delimited) field}; anything else is skipped.
_MESSAGES: dict[str, dict[int, str]] = {
    "Model": {7: "Graph", 20: "TrainingInfo", 25: "Function"},
    "TrainingInfo": {1: "Graph", 2: "Graph"},
    "Function": {7: "Node"},
    "Graph": {1: "Node", 5: "Tensor", 15: "SparseTensor"},
    "Node": {5: "Attribute"},
    "Attribute": {5: "Tensor", 6: "Graph", 10: "Tensor", 11: "Graph", 22: "SparseTensor", 23: "SparseTensor"},
    "SparseTensor": {1: "Tensor", 2: "Tensor"},
    "Tensor": {13: "Entry"},
}
_NODE_OP_TYPE, _NODE_ATTRIBUTE = 4, 5
_ATTR_NAME, _ATTR_I, _ATTR_S = 1, 3, 4
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview):
    """Yield (field number, wire type, value): an int for varints, a memoryview for the rest."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise _Malformed("truncated fixed-size field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Malformed("a field runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise _Malformed(f"wire type {wire} (groups are not used by ONNX)")
        yield number, wire, value


def _text(value) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("a name is not UTF-8") from None


def _walk(buf: memoryview, kind: str, depth: int, out: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise _Malformed(f"graphs nested more than {MAX_DEPTH} deep")
    children = _MESSAGES.get(kind, {})
    if kind == "Entry":  # a StringStringEntryProto of a tensor's external_data
        entry = {n: _text(v) for n, w, v in _fields(buf) if w == 2 and n in (_ENTRY_KEY, _ENTRY_VALUE)}
        if entry.get(_ENTRY_KEY) == "location":
            out.append(entry.get(_ENTRY_VALUE, ""))
        return
    op_type = None
    attributes = []
    for number, wire, value in _fields(buf):
        if kind == "Node" and number == _NODE_OP_TYPE and wire == 2:
            op_type = _text(value)
        if kind == "Node" and number == _NODE_ATTRIBUTE and wire == 2:
            attributes.append(value)
        if wire == 2 and number in children:
            _walk(value, children[number], depth + 1, out)
    if op_type == "EPContext":
        attrs = {}
        for a in attributes:
            fields = {n: v for n, _, v in _fields(a)}
            if _ATTR_NAME in fields:
                attrs[_text(fields[_ATTR_NAME])] = fields
        embed = attrs.get("embed_mode", {}).get(_ATTR_I, 1)
        if embed == 0 and _ATTR_S in attrs.get("ep_cache_context", {}):
            out.append(_text(attrs["ep_cache_context"][_ATTR_S]))


def referenced_files(data: bytes) -> list[str]:
    """The file names (as written, relative to the graph's folder) that the ONNX model `data` refers to."""
    out: list[str] = []
    try:
        _walk(memoryview(data), "Model", 0, out)
    except _Malformed as e:
        raise BundleError(f"graph file is not a valid ONNX model ({e}); re-export the bundle") from None
    return sorted(set(out))
