"""Runs ON the device (the emulated arm64 venv of a device build), never on the host.

    python device_probe.py JOBS.json

JOBS.json maps a name to a job; every job runs in this one process, because each Python start and import
of numpy, onnxruntime and edge_sdk costs tens of seconds under emulation:
- {"bundle", "profile", "prompt", "logits", "max_new_tokens"}: the logits of every prompt position saved to
  `logits` (the host compares them with its own run) and the greedy reply;
- {"bundle", "profile", "schema"}: one greedy generation under the JSON Schema in the file `schema`, by the
  build's own edge-sdk and llguidance.
Prints one JSON line: what machine and runtime this is, and each job's result (or its error, so that one
failing job fails only the tests that read it).
"""
import gc
import json
import platform
import sys
import time
import traceback

import numpy as np
import onnxruntime as ort

import edge_sdk


def logits_job(job):
    t0 = time.perf_counter()
    model = edge_sdk.load(job["bundle"], device=job["profile"])
    load_s = time.perf_counter() - t0
    ids = model.encode_prompt(job["prompt"])
    t0 = time.perf_counter()
    logits = model.engine.forward(ids, all_logits=True)  # [len(ids), vocab]
    prefill_s = time.perf_counter() - t0
    model.engine.reset()
    np.save(job["logits"], logits)
    t0 = time.perf_counter()
    max_new = int(job["max_new_tokens"])
    text = model.generate(job["prompt"], max_new_tokens=max_new) if max_new else ""
    packed = getattr(model.engine, "packed", None)
    return {"providers": model.engine.session.get_providers(), "ids": ids, "text": text,
            "packed": packed and {"cached": packed.cached, "built": packed.built, "reason": packed.reason},
            "new_tokens": model.last_stats.new_tokens, "load_s": load_s, "prefill_s": prefill_s,
            "generate_s": time.perf_counter() - t0}


def structured_job(job):
    import llguidance

    schema = json.load(open(job["schema"], encoding="utf-8"))
    model = edge_sdk.load(job["bundle"], device=job["profile"])
    t0 = time.perf_counter()
    reply = model.generate("Extract the person: Ana Lima is 34 and lives in Porto.", max_new_tokens=48,
                           response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    return {"llguidance": llguidance.__file__, "llguidance_version": llguidance.__version__, "text": str(reply),
            "finish_reason": reply.finish_reason, "new_tokens": model.last_stats.new_tokens,
            "seconds": time.perf_counter() - t0}


results = {}
for name, job in json.load(open(sys.argv[1], encoding="utf-8")).items():
    try:
        results[name] = (structured_job if "schema" in job else logits_job)(job)
    except Exception:
        results[name] = {"error": traceback.format_exc()}
    gc.collect()  # the previous job's model is gone before the next one loads
print(json.dumps({"machine": platform.machine(), "edge_sdk": edge_sdk.__file__, "onnxruntime": ort.__version__,
                  "numpy": np.__version__, "jobs": results}))
