"""What grammar-constrained decoding costs per token, next to free decoding on the same loaded bundle.

    .venv/bin/python benchmarks/structured_overhead.py --bundle /work/bundles/smollm2-int4 [--rounds 5]
    .venv/bin/python benchmarks/structured_overhead.py --gemma-like /tmp/gemma3-262k [--rounds 5]

--gemma-like DIR uses (and the first time builds: ~10 min) a Gemma-3-270M-shaped bundle with random weights
and the synthetic Gemma-3-shaped 262,144-token tokenizer of benchmarks/tokenizer_load.py (int4-b32, not
validated: its text is noise, only its shapes and speed matter). No real 262k-vocabulary model is reachable
offline here.

Each round runs, interleaved on one model (the machine is shared and noisy), the same prompt three ways per
sampling mode: free decoding of --tokens tokens (EOS ignored), and decoding under a JSON Schema long enough
not to complete. Both go through runtime.generate.generate_tokens (no detokenizer), so the only difference
is the grammar. Reported per mode, median and range over rounds:

  step_ms       free decoding: wall time per decode step (the model)
  grammar_ms    constrained: time in the grammar engine and masking per generated token (ConstraintStats)
  overhead      grammar_ms / step_ms: the target is <= 10 % at 49k and <= 15 % at 262k
  wall_ms       constrained: wall time per generated token (forced tokens share passes, so it can be lower)
  masked        share of sampled tokens whose whole logits row was masked (the rest were checked only)
  valid         the constrained text so far is a prefix the schema admits (it parses once closed)

Modes: greedy (check the argmax), temperature 1 (rejection: keep an allowed draw), temperature 0.8 + top-p
0.9 (top-p needs the masked row every step: the worst case).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCHEMA = {"type": "object", "properties": {"notes": {"type": "array", "minItems": 60, "items": {
    "type": "object", "properties": {"topic": {"type": "string", "minLength": 8, "maxLength": 60},
                                     "score": {"type": "integer", "minimum": 0, "maximum": 100},
                                     "done": {"type": "boolean"}},
    "required": ["topic", "score", "done"], "additionalProperties": False}}},
    "required": ["notes"], "additionalProperties": False}
PROMPT = "Write notes about the history of the city of Lyon as a list."
MODES = {"greedy": dict(temperature=0.0), "temperature 1": dict(temperature=1.0, seed=0),
         "top-p 0.9": dict(temperature=0.8, top_p=0.9, seed=0)}


def run_once(model, ids, settings, tokens, grammar: bool):
    from edge_sdk.runtime import sampling
    from edge_sdk.runtime.generate import GenerationStats, generate_tokens
    from edge_sdk.runtime.structured import generation

    spec = generation.prepare(model, {"response_format": {"type": "json_schema", "json_schema": {
        "name": "notes", "schema": SCHEMA}}}) if grammar else None
    constraint = generation.constraint_for(model, spec) if grammar else None
    s = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, **{k: v for k, v in settings.items() if k != "seed"}}
    sampler = sampling.make_sampler(s["temperature"], s["top_k"], s["top_p"], s["min_p"], settings.get("seed"))
    if constraint is not None:
        sampler = constraint.sampler(sampler, **s)
    passes = [0]
    forward = model.decoder.forward

    def counted(run, all_logits=False):
        passes[0] += 1
        return forward(run, all_logits)

    model.decoder.forward = counted
    stats = GenerationStats()
    try:
        out = list(generate_tokens(model.decoder, ids, max_new_tokens=tokens, sampler=sampler,
                                   eos_ids=model.eos_token_ids if grammar else [], stats=stats, constraint=constraint))
    finally:
        del model.decoder.forward
    row = {"tokens": len(out), "passes": passes[0] - 1, "decode_s": stats.decode_s,
           "step_ms": 1000 * stats.decode_s / max(1, passes[0] - 1)}
    if constraint is not None:
        c = constraint.stats
        row.update(grammar_ms=1000 * c.grammar_s / len(out), wall_ms=1000 * stats.decode_s / len(out),
                   masked=c.masked / max(1, c.sampled), forced=c.forced / len(out),
                   valid=_valid_prefix(model.tokenizer.decode(out, skip_special_tokens=False)))
    model.decoder.reset()
    return row


def _valid_prefix(text: str) -> bool:
    """jsonschema's verdict on the generated text cut after its last complete list item and closed: the
    schema asks for more items than the run has tokens, so the text itself never completes."""
    import jsonschema

    end = text.rfind("}, {")
    if end < 0:
        return True  # not one complete item yet: nothing to judge
    schema = json.loads(json.dumps(SCHEMA))
    schema["properties"]["notes"]["minItems"] = 0
    try:
        jsonschema.validate(json.loads(text[:end + 1] + "]}"), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", help="a bundle to measure (e.g. /work/bundles/smollm2-int4)")
    p.add_argument("--gemma-like", metavar="DIR", help="the 262k-vocabulary bundle (built here if DIR does not exist)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not args.bundle and not args.gemma_like:
        p.error("give --bundle or --gemma-like")
    import edge_sdk

    bundle = args.bundle or ensure_gemma_like(Path(args.gemma_like))
    model = edge_sdk.load(bundle)
    vocab = model.manifest["architecture"]["vocab_size"]
    from edge_sdk.runtime.structured import backend

    t0 = time.perf_counter()
    backend.tokenizer_for(model)
    tok_s = time.perf_counter() - t0
    ids = model.encode_prompt(PROMPT)
    run_once(model, ids, MODES["greedy"], 8, True)  # warm-up: sessions, caches
    rows: dict[str, list] = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode, settings in MODES.items():
            free = run_once(model, ids, settings, args.tokens, False)
            constrained = run_once(model, ids, settings, args.tokens, True)
            rows[mode].append((free, constrained))
            print(f"round {r + 1} {mode}: step {free['step_ms']:.2f} ms, grammar {constrained['grammar_ms']:.3f} ms "
                  f"({100 * constrained['grammar_ms'] / free['step_ms']:.1f} %), wall {constrained['wall_ms']:.2f} ms",
                  file=sys.stderr)
    summary = {"bundle": str(bundle), "vocab": vocab, "llg_tokenizer_build_s": tok_s, "rounds": args.rounds,
               "tokens": args.tokens, "modes": {}}
    for mode, pairs in rows.items():
        def stat(values):
            return {"median": statistics.median(values), "min": min(values), "max": max(values)}

        step = [f["step_ms"] for f, _ in pairs]
        grammar = [c["grammar_ms"] for _, c in pairs]
        summary["modes"][mode] = {
            "step_ms": stat(step), "grammar_ms": stat(grammar),
            "overhead_pct": stat([100 * c["grammar_ms"] / f["step_ms"] for f, c in pairs]),
            "wall_ms": stat([c["wall_ms"] for _, c in pairs]), "masked": stat([c["masked"] for _, c in pairs]),
            "forced": stat([c["forced"] for _, c in pairs]), "valid": all(c["valid"] for _, c in pairs)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{bundle}: vocabulary {vocab}, llguidance tokenizer built in {tok_s:.2f} s; {args.rounds} interleaved "
          f"rounds of {args.tokens} tokens (median [min-max])")
    print("| mode | decode step (free) | grammar per token | overhead | constrained wall per token | rows masked "
          "| forced tokens | valid |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, m in summary["modes"].items():
        def f(s, fmt="{:.2f}"):
            return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"

        print(f"| {mode} | {f(m['step_ms'])} ms | {f(m['grammar_ms'], '{:.3f}')} ms | "
              f"{f(m['overhead_pct'], '{:.1f}')} % | {f(m['wall_ms'])} ms | {f(m['masked'], '{:.2f}')} | "
              f"{f(m['forced'], '{:.2f}')} | {'yes' if m['valid'] else 'NO'} |")


def ensure_gemma_like(out: Path) -> Path:
    """A Gemma-3-270M-shaped bundle (18 layers, hidden 640, 262,144 tokens) with random weights and the
    synthetic Gemma-3-shaped tokenizer; built once into `out` (int4-b32, the default CPU recipe)."""
    if (out / "edge_manifest.json").is_file():
        return out
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    from benchmarks.tokenizer_load import synthetic
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.testing import GEMMA3_CHAT

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "gemma-like"
        src.mkdir()
        cfg = Gemma3TextConfig(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                               num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                               max_position_embeddings=32768, sliding_window=512, query_pre_attn_scalar=256,
                               bos_token_id=2, eos_token_id=6, pad_token_id=0, tie_word_embeddings=True)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(src)
        synthetic(src / "synthetic.json", 262144)
        tok = PreTrainedTokenizerFast(tokenizer_file=str(src / "synthetic.json"), bos_token="<bos>",
                                      eos_token="<end_of_turn>", pad_token="<pad>", unk_token="<unk>")
        tok.chat_template = GEMMA3_CHAT
        tok.save_pretrained(src)
        (src / "synthetic.json").unlink()
        export(str(src), out, recipe="int4-b32", max_context=1024, validate=False, progress=True)
    return out


if __name__ == "__main__":
    main()
