"""The quality claims, recomputed here instead of read back from what the exporter wrote.

The default int4 bundle against transformers fp32 on a text the exporter's validator never saw, and
`edge-sdk eval --reference` between two really different bundles (int4 vs fp32)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import edge_sdk
from edge_sdk.runtime.evaluate import perplexity

pytestmark = pytest.mark.e2e
torch = pytest.importorskip("torch")

# Not the built-in eval text, not a validation prompt: written for this test.
TEXT = (
    "The lighthouse stood at the end of a narrow spit of rock, and for forty years the same family had kept "
    "its lamp burning. Every evening the keeper climbed the spiral stairs, trimmed the wick, wiped the salt "
    "from the great lens and wound the clockwork that turned it. Ships passing in the night saw the beam "
    "sweep across the water once every ten seconds, a signal as familiar to the fishermen as the church bell "
    "in the village behind the dunes. When the lamp was finally automated, the keeper's daughter wrote that "
    "the silence of the tower felt stranger than any storm she remembered. Today the building is a small "
    "museum: visitors can read the logbooks, see the brass instruments, and look out over the same grey sea."
)


def _hf_nll(hf, ids: list[int]) -> tuple[float, np.ndarray]:
    with torch.no_grad():
        logits = hf(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1], -1)
    nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean().item()
    return nll, logits.numpy()


def test_default_int4_bundle_against_transformers_on_unseen_text(smollm2_bundle, smollm2_reference):
    hf, _ = smollm2_reference
    model = edge_sdk.load(smollm2_bundle)
    ids = model.encode_prompt(TEXT, raw=True)
    assert len(ids) > 120
    ours = perplexity(model, ids=ids, window=len(ids))
    ref_nll, ref_logits = _hf_nll(hf, ids)
    increase = ours["ppl"] / math.exp(ref_nll) - 1
    model.decoder.reset()
    our_logits = model.engine.forward(ids, all_logits=True)
    model.decoder.reset()
    top1 = float((our_logits.argmax(-1) == ref_logits.argmax(-1)).mean())
    print(f"{model.manifest['quantization']['recipe']} on unseen text ({len(ids)} tokens): perplexity {ours['ppl']:.3f} vs transformers fp32 "
          f"{math.exp(ref_nll):.3f} ({increase:+.2%}), top-1 agreement {top1:.1%}")
    assert increase <= 0.05  # the default recipe's documented bound
    assert top1 >= 0.80


def test_eval_reference_between_two_different_bundles(smollm2_bundle, smollm2_fp32_bundle):
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "eval", str(smollm2_bundle), "--reference",
                           str(smollm2_fp32_bundle), "--json", "--quiet", "--window", "256"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    ours, ref = r["perplexity"]["ppl"], r["reference"]["perplexity"]["ppl"]
    from edge_sdk.devices import DEFAULT_PROFILE, load_profile

    assert r["recipe"] == load_profile(DEFAULT_PROFILE).recipe and r["reference"]["recipe"] == "fp32"
    assert ours != ref and r["ppl_delta_rel"] == pytest.approx(ours / ref - 1)
    # The default keeps fp32 activations on exact weights: its perplexity lands on either side of fp32's
    # (the head's int8-activation logits outside its top 8 move the normalisation a little).
    assert abs(r["ppl_delta_rel"]) < 0.05
    fp32 = edge_sdk.load(smollm2_fp32_bundle)
    alone = perplexity(fp32, window=256)
    assert ref == pytest.approx(alone["ppl"], rel=1e-6)  # the reference figure is the fp32 bundle's own
    a = r["greedy_agreement"]
    assert a["total"] == 6 and 0 <= a["identical"] <= 6
