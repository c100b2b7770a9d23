"""transformers fp32 reference: last-prompt-position logits + 128 greedy tokens (EOS ignored).
Usage: python ref_transformers.py MODEL_DIR [gguf_file] OUT_PREFIX   (run with any venv that has torch+transformers)"""
import os
import json, sys
import numpy as np, torch, transformers
from transformers import AutoModelForCausalLM
os.chdir(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"))  # its inputs and outputs live there

args = sys.argv[1:]
out = args[-1]
kw = {"gguf_file": args[1]} if len(args) == 3 else {}
spec = json.load(open(os.path.join(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"), "ids.json")))
ids, n_new = spec["ids"], spec["new_tokens"]
torch.set_num_threads(2)
model = AutoModelForCausalLM.from_pretrained(args[0], dtype=torch.float32, **kw).eval()
with torch.no_grad():
    o = model(torch.tensor([ids]), use_cache=True)
    last = o.logits[0, -1].float().numpy()
    past = o.past_key_values
    tok = int(last.argmax()); toks = [tok]
    for i in range(n_new - 1):
        o = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
        past = o.past_key_values
        tok = int(o.logits[0, -1].argmax()); toks.append(tok)
np.save(out + "_last_logits.npy", last)
json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "model": args[0], "kw": kw,
           "rope_theta": getattr(model.config, "rope_theta", None), "tokens": toks}, open(out + ".json", "w"))
print("done", transformers.__version__, toks[:16])
