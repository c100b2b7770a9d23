"""Runs ON the device (the emulated arm64 venv of a device build), never on the host.

    python device_probe.py BUNDLE PROFILE PROMPT LOGITS.npy MAX_NEW_TOKENS

Prints one JSON line: what machine and runtime this is, the prompt's ids, and the greedy reply;
saves the logits of every prompt position so the host can compare them with its own run.
"""
import json
import platform
import sys
import time

import numpy as np
import onnxruntime as ort

import edge_sdk

bundle, profile, prompt, out, max_new = sys.argv[1:6]
t0 = time.perf_counter()
model = edge_sdk.load(bundle, device=profile)
load_s = time.perf_counter() - t0
ids = model.encode_prompt(prompt)
t0 = time.perf_counter()
logits = model.engine.forward(ids, all_logits=True)  # [len(ids), vocab]
prefill_s = time.perf_counter() - t0
model.engine.reset()
np.save(out, logits)
t0 = time.perf_counter()
text = model.generate(prompt, max_new_tokens=int(max_new)) if int(max_new) else ""
print(json.dumps({"machine": platform.machine(), "edge_sdk": edge_sdk.__file__, "onnxruntime": ort.__version__,
                  "numpy": np.__version__, "providers": model.engine.session.get_providers(), "ids": ids,
                  "text": text, "new_tokens": model.last_stats.new_tokens, "load_s": load_s, "prefill_s": prefill_s,
                  "generate_s": time.perf_counter() - t0}))
