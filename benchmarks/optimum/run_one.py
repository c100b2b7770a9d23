"""One fresh-process measurement. Prints one JSON line on stdout.

  /work/main/.venv/bin/python run_one.py ours          # edge-sdk bundle /work/bundles/smollm2-fp32
  /work/bench-venvs/optimum/bin/python run_one.py optimum      # optimum graph, plain session.run loop
  /work/bench-venvs/optimum/bin/python run_one.py optimum-iob  # optimum graph, IO-binding loop (KV stays in ORT values)
  /work/bench-venvs/optimum/bin/python run_one.py optimum-O2   # graph from `export onnx --optimize O2`, plain loop
  /work/bench-venvs/optimum/bin/python run_one.py optimum-accel  # re-export with accelerate installed (tied embedding deduplicated), plain loop

Protocol (same as benchmarks/anchors/_common.py): load (timed), 1 untimed warm-up generation, 1 timed
generation from an empty cache: prefill of the prompt ids -> argmax of last position (ttft), then
new_tokens-1 single-token greedy steps, EOS ignored (decode). 2 intra-op threads, inter-op 1, sequential,
ORT_ENABLE_ALL. Peak RSS = VmHWM at the end (includes the Python interpreter and, for 'ours', edge_sdk imports).
"""
import json, os, resource, sys, time

import numpy as np

now = time.perf_counter
HERE = os.environ.get("OPTIMUM_WORK", "/work/exp/optimum")  # inputs, graphs and results
THREADS = 2
kind = sys.argv[1]
spec = json.load(open(os.path.join(HERE, "ids.json")))
IDS, N_NEW = spec["ids"], spec["new_tokens"]


def vmhwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6


if kind == "ours":
    import onnxruntime as ort
    import edge_sdk

    def load():
        return edge_sdk.load(os.environ.get("EDGE_SDK_BUNDLE", "/work/bundles/smollm2-fp32"), threads=THREADS)

    def generate(m, ids, n_new):
        eng = m.engine
        eng.reset()
        t0 = now()
        last = np.asarray(eng.forward(list(ids)), dtype=np.float32).reshape(-1)
        tok = int(last.argmax())
        t1 = now()
        out = [tok]
        for _ in range(n_new - 1):
            tok = int(np.argmax(eng.forward([tok])))
            out.append(tok)
        return out, t1 - t0, now() - t1, last

else:
    import onnxruntime as ort

    PATH = os.path.join(HERE, {"optimum-O2": "smollm2-optimum-O2", "optimum-accel": "smollm2-optimum-accel"}.get(kind, "smollm2-optimum"), "model.onnx")
    L, KVH, HD = 30, 3, 64

    def load():
        so = ort.SessionOptions()
        so.intra_op_num_threads = THREADS
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return ort.InferenceSession(PATH, so, providers=["CPUExecutionProvider"])

    def feeds(ids, past_len, past):
        n = len(ids)
        f = {
            "input_ids": np.asarray([ids], np.int64),
            "attention_mask": np.ones((1, past_len + n), np.int64),
            "position_ids": np.arange(past_len, past_len + n, dtype=np.int64)[None, :],
        }
        f.update(past)
        return f

    def empty_past():
        z = np.zeros((1, KVH, 0, HD), np.float32)
        return {f"past_key_values.{i}.{k}": z for i in range(L) for k in ("key", "value")}

    if kind in ("optimum", "optimum-O2", "optimum-accel"):
        def generate(sess, ids, n_new):
            outs = [o.name for o in sess.get_outputs()]
            t0 = now()
            res = sess.run(outs, feeds(list(ids), 0, empty_past()))
            last = res[0][0, -1].astype(np.float32)
            tok = int(last.argmax())
            past = {n.replace("present", "past_key_values"): v for n, v in zip(outs[1:], res[1:])}
            t1 = now()
            out, pos = [tok], len(ids)
            for _ in range(n_new - 1):
                res = sess.run(outs, feeds([tok], pos, past))
                pos += 1
                tok = int(res[0][0, -1].argmax())
                past = {n.replace("present", "past_key_values"): v for n, v in zip(outs[1:], res[1:])}
                out.append(tok)
            return out, t1 - t0, now() - t1, last

    elif kind == "optimum-iob":
        def generate(sess, ids, n_new):
            outs = [o.name for o in sess.get_outputs()]
            io = sess.io_binding()
            for name, v in feeds(list(ids), 0, empty_past()).items():
                io.bind_cpu_input(name, v)
            for name in outs:
                io.bind_output(name, "cpu")
            t0 = now()
            sess.run_with_iobinding(io)
            vals = io.get_outputs()
            last = vals[0].numpy()[0, -1].astype(np.float32)
            tok = int(last.argmax())
            t1 = now()
            out, pos = [tok], len(ids)
            for _ in range(n_new - 1):
                io = sess.io_binding()
                for name, v in feeds([tok], pos, {}).items():
                    io.bind_cpu_input(name, v)
                for name, v in zip(outs[1:], vals[1:]):  # present -> past, no numpy copy
                    io.bind_ortvalue_input(name.replace("present", "past_key_values"), v)
                for name in outs:
                    io.bind_output(name, "cpu")
                sess.run_with_iobinding(io)
                vals = io.get_outputs()
                pos += 1
                tok = int(vals[0].numpy()[0, -1].argmax())
                out.append(tok)
            return out, t1 - t0, now() - t1, last
    else:
        raise SystemExit(f"unknown runtime {kind}")

t0 = now()
model = load()
load_s = now() - t0
generate(model, IDS, N_NEW)  # warm-up
tokens, ttft, dec, last = generate(model, IDS, N_NEW)
np.save(os.path.join(HERE, "results", f"last_logits_{kind}.npy"), last)
print(json.dumps({
    "runtime": kind, "pid": os.getpid(), "load_s": load_s, "prompt_tokens": len(IDS), "new_tokens": N_NEW,
    "ttft_s": ttft, "decode_s": dec,
    "prefill_tok_s": len(IDS) / ttft, "decode_tok_s": (N_NEW - 1) / dec,
    "peak_rss_mb": vmhwm_mb(), "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
    "onnxruntime": ort.__version__, "numpy": np.__version__, "tokens": tokens,
}))
