"""How close `edge-sdk adapter merge` comes to PEFT's add_weighted_adapter: the max |logit difference| (fp32, 40
tokens) on a tiny random llama for each case of tests/exporters/test_adapter_merge.py, next to the difference from
the first adapter alone (what a wrong merge would look like) and the logits' scale.

    python benchmarks/adapter_merge_vs_peft.py        # from the repository root; needs torch, transformers, peft
"""
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.exporters import test_adapter_merge as t
from edge_sdk.exporters.adapters.combine import merge_adapters
from edge_sdk.exporters.export import export
from edge_sdk.exporters.testing import make_tiny_model_dir

root = Path(tempfile.mkdtemp(prefix="merge_vs_peft."))
base = make_tiny_model_dir(root / "tiny-llama")
mk = t.make_adapter
qvd = ["q_proj", "v_proj", "down_proj"]
setup = {"root": root, "base": base,
         "one": mk(base, root / "one", seed=1),
         "two": mk(base, root / "two", seed=2, r=8, lora_alpha=4, use_rslora=True, target_modules=qvd),
         "four": mk(base, root / "four", seed=3, r=4, lora_alpha=8, target_modules=["k_proj", "up_proj"]),
         "pat": mk(base, root / "pat", seed=4, r=8, alpha_pattern={"v_proj": 3, "down_proj": 40}, target_modules=qvd)}
export(str(base), root / "bundle", recipe="fp32", adapters={k: str(setup[k]) for k in ("one", "two", "four", "pat")},
       progress=False, validate=False)
for i, (method, parts, opts) in enumerate(t.CASES):
    b = root / f"case-{i}"
    shutil.copytree(root / "bundle", b)
    merge_adapters(b, "mix", parts, method, **opts)
    ours = t._ours(b, "mix")
    m = t._peft(setup, [a for a, _ in parts])
    m.add_weighted_adapter([a for a, _ in parts], [w for _, w in parts], "mix", combination_type=method,
                           density=opts.get("density"), majority_sign_method=opts.get("majority_sign", "total"))
    m.set_adapter("mix")
    ref = t._reference(m, t.IDS)
    m.set_adapter(parts[0][0])
    first = t._reference(m, t.IDS)
    name = "+".join(f"{a}:{w}" for a, w in parts)
    print(f"{method:12s} {name:28s} {opts}  max|ours-peft| {np.abs(ours - ref).max():.2e}   (vs first adapter alone "
          f"{np.abs(ours - first).max():.2e}, logit scale {np.abs(ref).max():.2f})", flush=True)
shutil.rmtree(root)
