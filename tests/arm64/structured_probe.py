"""Runs ON the device (the emulated arm64 venv of a `--structured` device build), never on the host.

    python structured_probe.py BUNDLE PROFILE SCHEMA.json

One greedy generation under a JSON Schema with the build's own edge-sdk and llguidance; prints one JSON line.
"""
import json
import platform
import sys
import time

import edge_sdk
import llguidance

bundle, profile, schema_file = sys.argv[1:4]
schema = json.load(open(schema_file, encoding="utf-8"))
model = edge_sdk.load(bundle, device=profile)
t0 = time.perf_counter()
reply = model.generate("Extract the person: Ana Lima is 34 and lives in Porto.", max_new_tokens=48,
                       response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
print(json.dumps({"machine": platform.machine(), "edge_sdk": edge_sdk.__file__, "llguidance": llguidance.__file__,
                  "llguidance_version": llguidance.__version__, "text": str(reply), "finish_reason": reply.finish_reason,
                  "new_tokens": model.last_stats.new_tokens, "seconds": time.perf_counter() - t0}))
