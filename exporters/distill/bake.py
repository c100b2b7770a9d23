"""Prompt baking's payoff, measured on the device runtime: the time to first token with the long system
prompt (base model) against the baked adapter without it, and how often the two answer alike.

Both run in one loaded copy of the bundle with the adapter added (`edge-sdk adapter add`), alternating run by
run so the machine's load falls on both alike; the figure is the median of `runs`. Each timed run follows an
untimed one on the same side: switching the adapter in or out is paid once when it is chosen, not per
question, so it is not part of a question's latency. The decoder's cache is reset before each run: a reused
prefix would time a prefill that did not happen.
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .report import exact_match, token_f1

NAME = "baked"


def ttft(model, ids: list[int], adapter: str | None) -> float:
    """Seconds from the call to the first token: the prefill of `ids` and one decode step."""
    model.decoder.reset()
    start = time.perf_counter()
    for _ in model.stream_ids(ids, max_new_tokens=1, temperature=0.0, adapter=adapter):
        pass
    return time.perf_counter() - start


def payoff(bundle: Path, adapter_dir: Path, system: str, held, *, max_new_tokens: int, runs: int = 5,
           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    import edge_sdk

    from ...runtime.bundle import read_manifest
    from ..adapters.add import add_adapter

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    manifest = read_manifest(bundle)  # the slots are in the manifest: no second model load to find them
    if not manifest.get("lora"):
        return {"ttft_ms": None, "agreement": None,
                "skipped": "the bundle has no adapter slots (export it with --adapters) to switch the baked adapter in"}
    with tempfile.TemporaryDirectory(prefix="edge-sdk-bake-") as tmp:
        copy = Path(tmp) / bundle.name
        shutil.copytree(bundle, copy)
        add_adapter(copy, NAME, adapter_dir, force=True)
        model = edge_sdk.load(copy)
        long_ids = model.encode_prompt([{"role": "system", "content": system}] + held[0].chat)
        short_ids = model.encode_prompt(held[0].chat)
        timed: dict[str, list[float]] = {"with_system": [], "baked": []}
        for _ in range(runs):
            for side, ids, adapter in (("with_system", long_ids, None), ("baked", short_ids, NAME)):
                ttft(model, ids, adapter)  # the switch (and first-call allocations) fall outside the timing
                timed[side].append(ttft(model, ids, adapter))
        rows = []
        for ex in held:
            long_answer = str(model.generate([{"role": "system", "content": system}] + ex.chat,
                                             max_new_tokens=max_new_tokens, temperature=0.0, adapter=None))
            baked = str(model.generate(ex.chat, max_new_tokens=max_new_tokens, temperature=0.0, adapter=NAME))
            plain = str(model.generate(ex.chat, max_new_tokens=max_new_tokens, temperature=0.0, adapter=None))
            rows.append({"with_system": long_answer, "baked": baked, "plain": plain,
                         "exact": exact_match(baked, long_answer), "f1": token_f1(baked, long_answer),
                         "plain_exact": exact_match(plain, long_answer), "plain_f1": token_f1(plain, long_answer)})
    n = len(rows)
    ms = {k: [round(v * 1000, 2) for v in vals] for k, vals in timed.items()}
    log(f"distill: TTFT with the system prompt {statistics.median(ms['with_system']):.1f} ms "
        f"({len(long_ids)} tokens), baked {statistics.median(ms['baked']):.1f} ms ({len(short_ids)} tokens)")
    return {"prompt_tokens": {"with_system": len(long_ids), "baked": len(short_ids)},
            "ttft_ms": {"with_system": statistics.median(ms["with_system"]), "baked": statistics.median(ms["baked"]),
                        "runs": ms},
            # on the device runtime: the baked adapter without the prompt, and the plain model without it
            # (what dropping the prompt costs with no adapter), each against the long-prompt answers
            "agreement": {"exact_match": round(sum(r["exact"] for r in rows) / n, 4),
                          "token_f1": round(sum(r["f1"] for r in rows) / n, 4),
                          "without_adapter_exact_match": round(sum(r["plain_exact"] for r in rows) / n, 4),
                          "without_adapter_token_f1": round(sum(r["plain_f1"] for r in rows) / n, 4),
                          "answers": rows}}
