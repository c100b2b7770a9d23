"""How long a large-vocabulary tokenizer takes to load and encode its first text, per backend.

    .venv/bin/python benchmarks/tokenizer_load.py [--tokenizer PATH/tokenizer.json] [--vocab 262144] [--rounds 5]

Without --tokenizer it writes a synthetic Gemma-3-shaped tokenizer.json (no real one is reachable offline
here): Gemma's pipeline (Replace " " -> "▁", Split, BPE with byte fallback, <bos> template), --vocab
tokens, built from ~3,300 characters by as many merges as it takes. Each round runs in a fresh Python
process (import time excluded, nothing cached), interleaved, and reports the median of:
  hf       HF `tokenizers` (Rust): Tokenizer.from_file + first encode
  pure     our pure-Python backend from tokenizer.json
  compact  our pure-Python backend from the compact file the exporter writes next to it
The quality column: whether the backend's ids equal HF's on a mixed text.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TEXT = "The quick brown fox 中文 jumps over 12345 lazy dogs. Ünïcödé café 😀 and more text here."

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
kind, path = sys.argv[1], sys.argv[2]
if kind == "hf":
    from tokenizers import Tokenizer
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(path)
    ids = tok.encode(sys.argv[3], add_special_tokens=False).ids
else:
    from edge_sdk.runtime.tokenizer import Tokenizer
    t0 = time.perf_counter()
    tok = Tokenizer.from_compact(path) if kind == "compact" else Tokenizer.from_file(path, backend="pure")
    ids = tok.encode(sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - t0, "ids": ids}))
"""


def synthetic(path: Path, vocab_size: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    alphabet = ([chr(c) for c in range(0x61, 0x7B)] + [chr(c) for c in range(0x41, 0x5B)] + list("▁.,!?0123456789")
                + [chr(c) for c in range(0x4E00, 0x4E00 + 3000)])
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    pieces, merges = list(alphabet), []
    while len(vocab) < vocab_size:
        left, right = rng.choice(pieces), rng.choice(alphabet)
        if left + right in vocab or len(left) >= 16:
            continue
        vocab[left + right] = len(vocab)
        pieces.append(left + right)
        merges.append([left, right])
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, t in enumerate(specials)]
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                              "invert": False},
            "post_processor": None,
            "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                         {"type": "ByteFallback"}, {"type": "Fuse"}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokenizer", help="a tokenizer.json (default: a synthetic Gemma-3-shaped one)")
    p.add_argument("--vocab", type=int, default=262_144)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from edge_sdk.runtime.tokenizer.compact import write_compact

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.tokenizer) if args.tokenizer else Path(tmp) / "tokenizer.json"
        if not args.tokenizer:
            synthetic(path, args.vocab)
        compact = Path(tmp) / "tokenizer.compact.npz"
        write_compact(json.loads(path.read_text(encoding="utf-8")), compact)
        files = {"hf": path, "pure": path, "compact": compact}
        times: dict[str, list[float]] = {k: [] for k in files}
        ids: dict[str, list[int]] = {}
        for _ in range(args.rounds):
            for kind, f in files.items():
                out = subprocess.run([sys.executable, "-c", PROBE, kind, str(f), TEXT], capture_output=True, text=True,
                                     check=True)
                result = json.loads(out.stdout)
                times[kind].append(result["seconds"])
                ids[kind] = result["ids"]
        spec = json.loads(path.read_text(encoding="utf-8"))
        print(f"{path.name if args.tokenizer else 'synthetic Gemma-3-shaped tokenizer.json'}: "
              f"{len(spec['model']['vocab'])} tokens, {len(spec['model'].get('merges') or [])} merges, "
              f"{path.stat().st_size / 2**20:.1f} MB (compact {compact.stat().st_size / 2**20:.1f} MB); "
              f"median of {args.rounds} fresh processes")
        print(f"{'backend':8} {'load + first encode (s)':>24} {'ids equal to HF':>16}")
        for kind in files:
            print(f"{kind:8} {statistics.median(times[kind]):24.3f} {str(ids[kind] == ids['hf']):>16}")


if __name__ == "__main__":
    main()
