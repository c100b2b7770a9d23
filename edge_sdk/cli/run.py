"""edge-sdk run BUNDLE --prompt TEXT: stream one reply, then a one-line summary."""
from __future__ import annotations

import argparse

from ._common import add_load_args, add_sampling_args, load_model, sampling_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="generate a reply to one prompt",
                       description="Stream the model's reply to one prompt, then print tokens, time to first "
                                   "token and tokens/s. The prompt goes through the bundle's chat template "
                                   "as one user message unless --raw; a model without a chat template (a base "
                                   "model) takes it as plain text.")
    add_load_args(p)
    p.add_argument("-p", "--prompt", required=True, help="the user message (use - to read it from stdin)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--raw", action="store_true", help="feed the prompt as plain text, without the chat template "
                                                      "(always so for a model that has none)")
    p.add_argument("--json", action="store_true", help="print one JSON object (text + figures) instead of streaming")
    p.add_argument("--speculative", action="store_true",
                   help="prompt-lookup speculative decoding: greedy (with the repetition penalty), the same text as "
                        "plain greedy decoding, faster on extraction/summaries")
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time

    from ._common import read_text_arg

    if args.speculative and args.temperature not in (None, 0):
        print("error: --speculative needs greedy decoding (--temperature 0)", file=sys.stderr)
        return 2
    prompt = read_text_arg(args.prompt, "the prompt")
    if not prompt:
        print("error: the prompt is empty", file=sys.stderr)
        return 2
    if args.system is not None:
        read_text_arg(args.system, "--system")
    t0 = time.perf_counter()
    model = load_model(args)
    load_s = time.perf_counter() - t0
    raw = args.raw or model.template is None  # a base model has no chat template: its prompts are plain text
    if raw:
        if args.system:
            why = "cannot be combined with --raw" if args.raw else "needs a chat template, and this model has none"
            print(f"error: --system {why}", file=sys.stderr)
            return 2
        request = prompt
    else:
        request = ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": prompt}]
    kw = sampling_kwargs(args)
    if args.speculative:
        kw["temperature"] = 0.0  # speculative decoding is greedy, whatever the bundle's default
    pieces = model.stream(request, raw=raw, speculative=args.speculative, **kw)
    if args.json:
        text = "".join(pieces)
        s = model.last_stats
        print(json.dumps({"text": text, "load_s": round(load_s, 3), "prompt_tokens": s.prompt_tokens,
                          "new_tokens": s.new_tokens, "ttft_s": round(s.ttft_s, 4),
                          "prefill_tok_s": round(s.prefill_tok_s, 1), "decode_tok_s": round(s.decode_tok_s, 1),
                          "stop_reason": s.stop_reason}, ensure_ascii=False))
        return 0
    try:
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pieces.close()
        model.last_stats.stop_reason = "cancelled"
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(f"[{model.last_stats.summary()}; load {load_s:.2f} s]", file=sys.stderr)
    return 0
