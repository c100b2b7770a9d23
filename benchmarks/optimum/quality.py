"""Greedy agreement and last-prompt-position logit diff of each runtime vs transformers fp32 (5.24, GGUF load)."""
import json, sys
import numpy as np
import os
os.chdir(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"))  # its inputs and outputs live there

TAG = sys.argv[1] if len(sys.argv) > 1 else ""

ref_tok = json.load(open("ref_tf5.json"))["tokens"]
ref = np.load("ref_tf5_last_logits.npy")
summary = json.load(open(f"results/summary{TAG}.json"))
rows = {}
for name in [k for k in summary if k not in ("uptime", "rounds")]:
    toks = summary[name]["tokens"]
    lg = np.load(f"results/last_logits_{name}.npy")
    first_diff = next((i for i, (a, b) in enumerate(zip(toks, ref_tok)) if a != b), None)
    rows[name] = {"same_128_tokens": toks == ref_tok, "first_divergence": first_diff,
                  "leading_agree": len(ref_tok) if first_diff is None else first_diff,
                  "max_abs_logit_diff": float(np.abs(lg - ref).max()),
                  "mean_abs_logit_diff": float(np.abs(lg - ref).mean()),
                  "argmax_same": int(lg.argmax()) == int(ref.argmax()),
                  "tokens_identical_across_runs": summary[name]["tokens_identical_across_runs"]}
a, b = np.load("results/last_logits_ours.npy"), np.load("results/last_logits_optimum.npy")
rows["ours_vs_optimum_max_abs"] = float(np.abs(a - b).max())
rows["ref_logit_range"] = [float(ref.min()), float(ref.max())]
json.dump(rows, open(f"results/quality{TAG}.json", "w"), indent=1)
print(json.dumps(rows, indent=1))
