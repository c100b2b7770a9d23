"""Measure the behaviour the adapter teaches: replying with exactly one line of JSON {"answer": ..., "topic": ...}.

    python examples/lora/evaluate.py --reference                            # torch + PEFT (host)
    python examples/lora/evaluate.py --bundle BASE_DIR --bundle-adapter ADAPTER_DIR   # two edge-sdk bundles
    python examples/lora/evaluate.py --switchable BUNDLE [--adapter-name json]  # one bundle, --adapters
    ... --show 8     # also print 8 replies side by side
    ... --json       # machine-readable results instead of the table

Both ways decode greedily from the same held-out prompts (questions not in train.jsonl), with the chat
template's default system prompt and nothing in the prompt asking for JSON: the format has to come from
the adapter. The reference run is what an exported adapter bundle should reproduce.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOPIC = re.compile(r"[a-z]+")  # "one word": lowercase letters only


def follows_shape(reply: str) -> bool:
    """True when the reply is one line holding one JSON object with exactly the keys answer and topic.

    answer: a non-empty string; topic: one lowercase word. Surrounding whitespace is tolerated, anything
    else (prose around the JSON, a second object, a code fence, a truncated object) is not.
    """
    text = reply.strip()
    if "\n" in text:
        return False
    try:
        obj = json.loads(text)
    except ValueError:
        return False
    return (isinstance(obj, dict) and set(obj) == {"answer", "topic"}
            and isinstance(obj["answer"], str) and bool(obj["answer"].strip())
            and isinstance(obj["topic"], str) and TOPIC.fullmatch(obj["topic"]) is not None)


# ------------------------------------------------------------------------------------------- runners


def reference_replies(prompts: list[str], adapter: Path, source: str, max_new_tokens: int) -> dict[str, list[str]]:
    """Replies of the base model, then of base + adapter (PEFT, unmerged), in torch."""
    import torch
    from peft import PeftModel

    from edge_sdk.exporters.sources import resolve

    src = resolve(source)
    model = src.load_model()  # fp32, eval mode: the same weights train.py adapted
    tok, _, _ = src.load_tokenizer()

    def reply(m, prompt: str) -> str:
        # Same rendering as train.py's encode() and the runtime: template text, tokenized without extras.
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids  # [1, T]
        with torch.no_grad():
            out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    replies = {"base": [reply(model, p) for p in prompts]}
    tuned = PeftModel.from_pretrained(model, str(adapter)).eval()  # wraps `model` in place
    replies["base + adapter"] = [reply(tuned, p) for p in prompts]
    return replies


def bundle_replies(prompts: list[str], base: Path, adapted: Path, max_new_tokens: int,
                   threads: int) -> dict[str, list[str]]:
    """Replies of two edge-sdk bundles (numpy + onnxruntime), greedy as the runtime's default."""
    import edge_sdk

    replies = {}
    for name, folder in (("base bundle", base), ("adapter bundle", adapted)):
        model = edge_sdk.load(folder, threads=threads)
        replies[name] = [model.generate(p, max_new_tokens=max_new_tokens) for p in prompts]
    return replies


def switchable_replies(prompts: list[str], bundle: Path, name: str, max_new_tokens: int,
                       threads: int) -> dict[str, list[str]]:
    """One bundle exported with --adapters: the base model (no adapter) and adapter `name`, one loaded model."""
    import edge_sdk

    model = edge_sdk.load(bundle, threads=threads)
    return {"bundle, no adapter": [model.generate(p, max_new_tokens=max_new_tokens, adapter=None) for p in prompts],
            f"bundle, adapter {name}": [model.generate(p, max_new_tokens=max_new_tokens, adapter=name)
                                        for p in prompts]}


# ------------------------------------------------------------------------------------------- report


def summarize(replies: dict[str, list[str]]) -> list[dict]:
    rows = []
    for name, texts in replies.items():
        ok = sum(follows_shape(t) for t in texts)
        rows.append({"model": name, "n": len(texts), "follows_shape": ok, "share": ok / len(texts),
                     "mean_reply_chars": sum(len(t.strip()) for t in texts) / len(texts)})
    return rows


def clip(text: str, width: int) -> str:
    """One table cell: newlines shown as ⏎, pipes escaped, long text cut."""
    text = text.strip().replace("\n", " ⏎ ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(rows: list[dict], replies: dict[str, list[str]], prompts: list[str], show: int) -> None:
    print("| model | follows the JSON shape | mean reply length (chars) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['follows_shape']}/{r['n']} ({r['share']:.0%}) | {r['mean_reply_chars']:.0f} |")
    if show:
        names = list(replies)
        print("\n| prompt | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for i, prompt in enumerate(prompts[:show]):
            print(f"| {clip(prompt, 40)} | " + " | ".join(clip(replies[n][i], 70) for n in names) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    way = p.add_mutually_exclusive_group(required=True)
    way.add_argument("--reference", action="store_true", help="torch + PEFT on the host")
    way.add_argument("--bundle", type=Path, metavar="BASE_BUNDLE", help="edge-sdk bundle of the base model")
    way.add_argument("--switchable", type=Path, metavar="BUNDLE",
                     help="a bundle exported with --adapters: its base model vs --adapter-name, switched in one model")
    p.add_argument("--adapter-name", default="json", help="the adapter's name in --switchable's bundle")
    p.add_argument("--bundle-adapter", type=Path, metavar="ADAPTER_BUNDLE",
                   help="edge-sdk bundle exported with --adapter (needed with --bundle)")
    p.add_argument("--adapter", type=Path, default=HERE / "out" / "json-adapter", help="PEFT adapter folder")
    p.add_argument("--source", default="smollm2-135m-instruct", help="edge-sdk source of the base model")
    p.add_argument("--prompts", type=Path, default=HERE / "data" / "heldout.jsonl")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--show", type=int, default=0, metavar="N", help="print N replies side by side")
    p.add_argument("--json", action="store_true", help="print results (and all replies) as JSON")
    args = p.parse_args()
    if bool(args.bundle) != bool(args.bundle_adapter):
        p.error("--bundle and --bundle-adapter go together (the base bundle and the adapter bundle)")

    prompts = [json.loads(line)["prompt"] for line in args.prompts.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    t0 = time.perf_counter()
    if args.reference:
        import torch

        torch.set_num_threads(args.threads)
        if not (args.adapter / "adapter_config.json").is_file():
            sys.exit(f"no adapter at {args.adapter}: run examples/lora/train.py first (or pass --adapter DIR)")
        replies = reference_replies(prompts, args.adapter, args.source, args.max_new_tokens)
    elif args.switchable:
        replies = switchable_replies(prompts, args.switchable, args.adapter_name, args.max_new_tokens, args.threads)
    else:
        replies = bundle_replies(prompts, args.bundle, args.bundle_adapter, args.max_new_tokens, args.threads)
    seconds = time.perf_counter() - t0

    rows = summarize(replies)
    if args.json:
        print(json.dumps({"way": "reference" if args.reference else "switchable" if args.switchable else "bundle", "seconds": round(seconds, 1),
                          "results": rows, "prompts": prompts, "replies": replies}, indent=2, ensure_ascii=False))
    else:
        print_table(rows, replies, prompts, args.show)
        print(f"\n{len(prompts)} held-out prompts, greedy, max {args.max_new_tokens} new tokens, {seconds:.0f} s")


if __name__ == "__main__":
    main()
