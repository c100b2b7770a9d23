"""Prompt ids (~150 tokens) through our bundle's tokenizer + chat template. Run with /work/main/.venv/bin/python."""
import os
import json
import edge_sdk

SYSTEM = "You are a helpful assistant running on a phone. Answer clearly and concisely."
USER = ("I am planning a weekend trip to the mountains with two friends. We will hike for about five hours "
        "on Saturday and want to camp overnight near a lake. Could you write a short checklist of what we "
        "should pack, explain how much water each person should carry, and give three tips for staying "
        "safe if the weather suddenly changes? Also, one of my friends has never camped before and is a bit "
        "nervous about sleeping outdoors, so please add a few words of reassurance and one simple thing "
        "she can do to feel more comfortable in the tent at night.")
m = edge_sdk.load(os.environ.get("EDGE_SDK_BUNDLE", "/work/bundles/smollm2-fp32"), threads=2)
msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
ids = m.encode_prompt(msgs)
# cross-check against transformers' tokenizer + template from the HF folder
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(os.path.join(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"), "smollm2-hf"))
hf = tok(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False), add_special_tokens=False)["input_ids"]
print("n_ids", len(ids), "same as HF tokenizer+template:", list(hf) == list(ids))
json.dump({"system": SYSTEM, "user": USER, "ids": [int(i) for i in ids], "new_tokens": 128}, open(os.path.join(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"), "ids.json"), "w"))
