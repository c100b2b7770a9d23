"""Runs on the device (or the host): a bundle's logits over the held-out text, KleidiAI on or off.

    python kleidiai_probe.py BUNDLE OUT.npy --tokens N [--kleidiai on|off] [--threads T]

Loads BUNDLE with onnxruntime's session config entry `mlas.disable_kleidiai` set to "1" (--kleidiai off)
or left unset (on: onnxruntime's own choice), teacher-forces the first N tokens of runtime/eval_text.py in
chunks of 64 from an empty cache, saves the [N, vocab] logits as float32 and prints one JSON line (machine,
onnxruntime version, ids, seconds). The host (benchmarks/kleidiai.py) compares the logits and scores them.
Needs only what a device build installs (edge_sdk, numpy, onnxruntime).
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_sdk.runtime.bundle import read_manifest
from edge_sdk.runtime.eval_text import EVAL_TEXT
from edge_sdk.runtime.model import Model
from edge_sdk.runtime.providers import SessionConfig

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("out")
ap.add_argument("--tokens", type=int, default=128)
ap.add_argument("--kleidiai", choices=("on", "off"), default="on")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

entries = {"mlas.disable_kleidiai": "1"} if args.kleidiai == "off" else {}
t0 = time.perf_counter()
bundle = Path(args.bundle)
model = Model(bundle, read_manifest(bundle), SessionConfig(threads=args.threads, session_entries=entries))
load_s = time.perf_counter() - t0
ids = model.encode_prompt(EVAL_TEXT, raw=True)[:args.tokens]
t0 = time.perf_counter()
logits = np.concatenate([model.engine.forward(ids[p:p + 64], all_logits=True) for p in range(0, len(ids), 64)])
np.save(args.out, logits.astype(np.float32))
print(json.dumps({"machine": platform.machine(), "onnxruntime": ort.__version__, "kleidiai": args.kleidiai,
                  "ids": ids, "load_s": load_s, "forward_s": time.perf_counter() - t0}))
