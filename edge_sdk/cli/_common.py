"""Options shared by the commands that generate (run, chat, bench): sampling and loading."""
from __future__ import annotations

import argparse
import math

MAX_THREADS = 64  # as for a bundle's own thread count (runtime/bundle/schema.py)


# Typed option values, checked while parsing: a bad value is `error: ...` and exit 2 before any model loads.
def _number(text: str, kind, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, what: str = ""):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value) or (value <= lo if lo_open else value < lo) \
            or (value >= hi if hi_open else value > hi):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def count(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, 0, 10**9, what="an integer >= 0")


def positive(text: str) -> int:
    """An integer >= 1."""
    return _number(text, int, 1, 10**9, what="an integer >= 1")


def threads(text: str) -> int:
    return _number(text, int, 1, MAX_THREADS, what=f"an integer from 1 to {MAX_THREADS}")


def context(text: str) -> int:
    return _number(text, int, 16, 1 << 17, what="an integer from 16 to 131072 tokens")


def temperature(text: str) -> float:
    return _number(text, float, 0.0, 100.0, what="a number >= 0 (0 = greedy)")


def probability(text: str) -> float:
    return _number(text, float, 0.0, 1.0, lo_open=True, what="in (0, 1] (1 = off)")


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a share, a threshold, a learning rate)."""
    return _number(text, float, 0.0, 1.0, lo_open=True, hi_open=True, what="a number between 0 and 1 (exclusive)")


def min_p(text: str) -> float:
    return _number(text, float, 0.0, 1.0, hi_open=True, what="in [0, 1) (0 = off)")


def penalty(text: str) -> float:
    return _number(text, float, 0.0, 100.0, lo_open=True, what="a number > 0 (1 = off)")


def seed(text: str) -> int:
    return _number(text, int, 0, 2**63 - 1, what="an integer >= 0")


def stop_text(text: str) -> str:
    from edge_sdk.runtime.stopping import MAX_STOP_CHARS  # stdlib only: cheap

    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    if len(text) > MAX_STOP_CHARS:
        raise argparse.ArgumentTypeError(f"a stop string is at most {MAX_STOP_CHARS} characters, this one has {len(text)}")
    return text


class _AppendStop(argparse._AppendAction):
    """--stop, repeatable up to the runtime's limit on the number of stop strings."""

    def __call__(self, parser, namespace, values, option_string=None):
        from edge_sdk.runtime.stopping import MAX_STOP_STRINGS

        if len(getattr(namespace, self.dest, None) or []) >= MAX_STOP_STRINGS:
            raise argparse.ArgumentError(self, f"at most {MAX_STOP_STRINGS} stop strings")
        super().__call__(parser, namespace, values, option_string)


def add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="BUNDLE", help="edge bundle folder (from `edge-sdk export`)")
    p.add_argument("--device", metavar="NAME", help="device profile overriding the bundle's (see `edge-sdk devices`)")
    p.add_argument("--threads", type=threads, metavar="N", help="intra-op threads (default: the profile's)")
    p.add_argument("--trusted-key", action="append", metavar="KEY.pub",
                   help="require the bundle to be signed by this public key (edge-sdk sign; repeatable)")
    p.add_argument("--adapter", metavar="NAME", help="use the bundle's LoRA adapter NAME (exported with --adapters)")
    p.add_argument("--max-context", type=context, metavar="TOKENS",
                   help="size the KV cache for fewer tokens than the bundle's maximum: less memory")
    p.add_argument("--force-load", action="store_true",
                   help="load even if the memory estimate exceeds the device's available memory")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    # No defaults here: an option left out takes the bundle's default (runtime/generation_defaults.py), the
    # same one the Python API, the server and the app use.
    from edge_sdk.runtime.generation_defaults import GENERATION_DEFAULTS as D, HELP

    g = p.add_argument_group("sampling", HELP)
    g.add_argument("--max-new-tokens", type=count, metavar="N",
                   help=f"stop after N tokens (default: the bundle's; edge-sdk's is {D['max_new_tokens']})")
    g.add_argument("--temperature", type=temperature,
                   help="0 = greedy, higher = more random (default: the bundle's; edge-sdk's is 0, greedy)")
    g.add_argument("--top-k", type=count, help="keep the K most likely tokens (0 = off; default: the bundle's)")
    g.add_argument("--top-p", type=probability, help="nucleus sampling mass (1.0 = off; default: the bundle's)")
    g.add_argument("--min-p", type=min_p, help="drop tokens below min-p x the top probability (0 = off; default: "
                                                 "the bundle's)")
    g.add_argument("--repetition-penalty", type=penalty,
                   help=f"> 1 discourages repeats, 1.0 = off (default: the bundle's; edge-sdk's is "
                        f"{D['repetition_penalty']}: greedy decoding without it loops)")
    g.add_argument("--seed", type=seed, help="random seed: the same seed gives the same text")
    g.add_argument("--stop", action=_AppendStop, type=stop_text, metavar="TEXT",
                   help="stop when TEXT is generated (repeatable)")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    """The sampling options given on the command line (None: not given, the bundle's default applies)."""
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_k": args.top_k,
            "top_p": args.top_p, "min_p": args.min_p, "repetition_penalty": args.repetition_penalty,
            "seed": args.seed, "stop": args.stop}


def load_model(args: argparse.Namespace):
    import edge_sdk

    model = edge_sdk.load(args.bundle, device=args.device, threads=args.threads, trusted_keys=args.trusted_key,
                          kind="decoder", **load_options(args))
    if getattr(args, "adapter", None):
        from edge_sdk.errors import BundleError

        try:
            model.adapter = args.adapter
        except ValueError as e:
            raise BundleError(str(e)) from None
    return model


def load_options(args: argparse.Namespace) -> dict:
    """edge_sdk.load's memory options from --max-context and --force-load."""
    return {"max_context": getattr(args, "max_context", None), "force": bool(getattr(args, "force_load", False))}


def read_text_arg(value: str, what: str) -> str:
    """`value`, or standard input when it is "-", as text; non-UTF-8 input is a clear error."""
    import sys

    from edge_sdk.errors import EdgeError

    if value == "-":
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EdgeError(f"{what} read from standard input is not UTF-8 text (byte {e.start}: "
                            f"{data[e.start:e.start + 1]!r}); convert it first, e.g. with iconv") from None
    try:
        value.encode("utf-8")  # arguments that were not UTF-8 arrive with lone surrogates
    except UnicodeEncodeError:
        raise EdgeError(f"{what} is not valid UTF-8 text; check your terminal's encoding") from None
    return value


def progress_printer(quiet: bool):
    """A `progress(message)` callback writing timed lines to stderr (None with --quiet): stdout stays the result."""
    if quiet:
        return None
    import sys
    import time

    t0 = time.perf_counter()

    def show(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    return show
