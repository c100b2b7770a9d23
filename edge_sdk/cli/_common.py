"""Options shared by the commands that generate (run, chat, bench): sampling and loading."""
from __future__ import annotations

import argparse


def add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="BUNDLE", help="edge bundle folder (from `edge-sdk export`)")
    p.add_argument("--device", metavar="NAME", help="device profile overriding the bundle's (see `edge-sdk devices`)")
    p.add_argument("--threads", type=int, metavar="N", help="intra-op threads (default: the profile's)")
    p.add_argument("--trusted-key", action="append", metavar="KEY.pub",
                   help="require the bundle to be signed by this public key (edge-sdk sign; repeatable)")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="stop after N tokens (default 256)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); higher = more random")
    g.add_argument("--top-k", type=int, default=0, help="keep the K most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1.0 = off)")
    g.add_argument("--min-p", type=float, default=0.0, help="drop tokens below min-p x the top probability (0 = off)")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (1.0 = off)")
    g.add_argument("--seed", type=int, help="random seed: the same seed gives the same text")
    g.add_argument("--stop", action="append", metavar="TEXT", help="stop when TEXT is generated (repeatable)")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_k": args.top_k,
            "top_p": args.top_p, "min_p": args.min_p, "repetition_penalty": args.repetition_penalty,
            "seed": args.seed, "stop": args.stop}


def load_model(args: argparse.Namespace):
    import edge_sdk

    return edge_sdk.load(args.bundle, device=args.device, threads=args.threads, trusted_keys=args.trusted_key)
