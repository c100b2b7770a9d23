"""Dequantize SmolLM2-135M-Instruct Q4_1 GGUF to an fp32 HF folder (run with /work/main/.venv/bin/python)."""
import os
import shutil, sys, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

SRC = "/root/.cache/edge-sdk/models/smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path(os.path.join(os.environ.get("OPTIMUM_WORK", "/work/exp/optimum"), "smollm2-hf"))
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(SRC, gguf_file=GGUF, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(SRC, gguf_file=GGUF)
print("loaded", time.perf_counter() - t0, "s", type(model).__name__, file=sys.stderr)
# Same as benchmarks/compare.py make_hf_folder: drop GGUF quantizer marker so save_pretrained writes plain safetensors.
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
shutil.rmtree(OUT, ignore_errors=True)
model.save_pretrained(str(OUT))
tok.save_pretrained(str(OUT))
(OUT / "tokenizer.model").unlink(missing_ok=True)  # copy of the GGUF, not a sentencepiece model
print("saved", sorted(p.name for p in OUT.iterdir()), file=sys.stderr)
