"""edge-sdk chat BUNDLE: an interactive multi-turn conversation (the KV cache is kept between turns)."""
from __future__ import annotations

import argparse

from ._common import add_load_args, add_sampling_args, load_model, sampling_kwargs

HELP = "commands: /reset starts a new conversation, /stats shows the last reply's figures, /quit (or Ctrl-D) exits; Ctrl-C stops a reply"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="interactive multi-turn chat in the terminal",
                       description="Chat with a bundle in the terminal. The conversation's KV cache is kept between "
                                   "turns. A reply is decoded one token at a time, which onnxruntime computes slightly "
                                   "differently from a prompt; so that the same conversation always gives the same "
                                   "answer, each reply is run once more as a prompt pass right after it is shown, "
                                   "while you type, and the next turn then runs only your new message. " + HELP)
    add_load_args(p)
    p.add_argument("--system", help="system prompt")
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import threading

    from edge_sdk.errors import ContextLengthError

    from ._common import read_text_arg

    if args.system is not None:
        read_text_arg(args.system, "--system")
    model = load_model(args)
    if model.template is None:  # a base model continues text; a conversation needs the template's turns
        print(f"error: {args.bundle} has no chat template (a base model): continue plain text with "
              f"`edge-sdk run {args.bundle} --prompt TEXT`", file=sys.stderr)
        return 2
    chat = model.chat(system=args.system)
    kw = sampling_kwargs(args)
    from edge_sdk.runtime.generation_defaults import describe

    settings = {**model.generation_defaults, **{k: v for k, v in kw.items() if v is not None}}
    print(f"{model.manifest['name']} - context {model.max_context} tokens - {describe(settings)}. {HELP}",
          file=sys.stderr)
    settling = None  # the thread running the last reply as a prompt pass while the user types
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            _join(settling)
            return 0
        except UnicodeDecodeError:
            print("(that line was not UTF-8 text; check your terminal's encoding)", file=sys.stderr)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            _join(settling)
            return 0
        if text == "/reset":
            chat.reset()
            print("(new conversation)", file=sys.stderr)
            continue
        if text == "/stats":
            print(f"[{chat.last_stats.summary()}; {chat.tokens_used}/{model.max_context} tokens in context]", file=sys.stderr)
            continue
        sys.stdout.write("bot> ")
        stream = chat.stream(text, **kw)
        try:
            for piece in stream:
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:  # stop this reply, keep the program and the partial reply
            stream.close()
            chat.last_stats.stop_reason = "cancelled"
            sys.stdout.write(" [stopped]")
        except ContextLengthError as e:
            print(f"\n{e}. Type /reset to start a new conversation.", file=sys.stderr)
            continue
        sys.stdout.write("\n")
        sys.stdout.flush()
        settling = threading.Thread(target=chat.settle, name="settle", daemon=True)
        settling.start()  # the next turn waits for it (the session runs one thing at a time)


def _join(thread) -> None:
    if thread is not None:
        thread.join()  # onnxruntime must not be running when the interpreter shuts down
