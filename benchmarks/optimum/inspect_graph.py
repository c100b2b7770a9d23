"""Op-type counts and I/O signature of an ONNX graph (no weights loaded). Usage: python inspect_graph.py MODEL.onnx [OUT.json]"""
import collections, json, sys
import onnx

path = sys.argv[1]
m = onnx.load(path, load_external_data=False)
g = m.graph
ops = collections.Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in g.node)

def sig(vi):
    t = vi.type.tensor_type
    dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]
    return {"name": vi.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type), "shape": dims}

ins = [sig(v) for v in g.input]
outs = [sig(v) for v in g.output]
inits = sum(1 for _ in g.initializer)
out = {
    "file": path,
    "opsets": {o.domain or "ai.onnx": o.version for o in m.opset_import},
    "producer": f"{m.producer_name} {m.producer_version}",
    "nodes": len(g.node),
    "initializers": inits,
    "op_counts": dict(ops.most_common()),
    "inputs": ins,
    "outputs": outs,
    "fused_attention": {k: ops.get(k, 0) + ops.get("com.microsoft." + k, 0) for k in ("GroupQueryAttention", "MultiHeadAttention", "Attention")},
}
if len(sys.argv) > 2:
    json.dump(out, open(sys.argv[2], "w"), indent=1)
print(json.dumps({k: v for k, v in out.items() if k not in ("inputs", "outputs")}, indent=1))
def compact(lst):
    # print first 4 and last 2 of long lists
    return lst if len(lst) <= 8 else lst[:5] + [{"...": f"{len(lst) - 7} more of the same pattern"}] + lst[-2:]
print("inputs:"); [print(" ", i) for i in compact(ins)]
print("outputs:"); [print(" ", o) for o in compact(outs)]
