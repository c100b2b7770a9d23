"""edge-sdk distill BUNDLE (--data FILE... | --teacher URL --prompts FILE | --bake-system FILE --prompts FILE)
--output ADAPTER_DIR: train a LoRA adapter of the bundle's model on a teacher's answers."""
from __future__ import annotations

import argparse

from ._common import fraction, positive

EPILOG = """\
The device model is the student: its transformers weights come from the source the bundle was exported
from (the manifest's provenance; --source for another copy), the prompts go through the bundle's own chat
template and tokenizer. The loss counts the answer tokens only; a seeded share of the distinct records is
held out, and the adapter kept is the one with the lowest held-out loss (training stops after --patience
epochs without a better one). Needs the export extra (torch, transformers, peft).

Teachers (exactly one):
  --data FILE...            teacher-log folders (edge-sdk serve --learn DIR) or JSONL files of records
                            {"messages": [...] or "prompt": "...", "answer": "..."}
  --teacher URL --prompts F any OpenAI-compatible server asked each prompt (greedy); the API key from the
                            environment variable named by --teacher-key-env
  --bake-system F --prompts F  prompt baking: the bundle itself answers with the long system prompt in F;
                            the adapter learns to answer the same without it

The output folder is a PEFT adapter: switch it in with `edge-sdk adapter add BUNDLE NAME=ADAPTER_DIR`, or
merge it with `edge-sdk export SOURCE --adapter ADAPTER_DIR`. Beside it: report.json (the held-out prompts'
student vs teacher answers before and after: exact match, token F1, and the share the hybrid router would
escalate at --threshold, by its own confidence measure; with --bake-system also the time to first token
with the long prompt vs the baked adapter without it), train.jsonl and held_out.jsonl.

examples:
  edge-sdk distill bundles/smollm2 --data ~/.edge-sdk/teacher --output out/learned
  edge-sdk distill bundles/smollm2 --teacher http://localhost:8080/v1 --teacher-model big \\
      --teacher-key-env CLOUD_KEY --prompts questions.txt --output lora/big
  edge-sdk distill bundles/smollm2 --bake-system support_prompt.txt --prompts questions.txt --output lora/baked
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="train a LoRA adapter on a teacher's answers (a log, a server, a long prompt)",
                       description="Distil a teacher into a LoRA adapter of BUNDLE's model, with a before/after "
                                   "report.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="the edge bundle whose model is the student")
    p.add_argument("--output", "-o", required=True, metavar="ADAPTER_DIR", help="the PEFT adapter folder to write")
    p.add_argument("--data", nargs="+", metavar="FILE", help="teacher-log folders or JSONL files of records")
    p.add_argument("--teacher", metavar="URL", help="an OpenAI-compatible server (base URL, e.g. http://host/v1)")
    p.add_argument("--teacher-model", metavar="NAME", help="the model name to ask the teacher server for")
    p.add_argument("--teacher-key-env", metavar="VAR", help="environment variable holding the teacher's API key")
    p.add_argument("--bake-system", metavar="FILE", help="prompt baking: the long system prompt to bake in")
    p.add_argument("--prompts", metavar="FILE", help="questions for --teacher / --bake-system: one per line, or "
                                                     "JSONL ({\"prompt\": ...} or {\"messages\": [...]})")
    p.add_argument("--source", metavar="SOURCE", help="the model the bundle was exported from, if its manifest's "
                                                      "source is not reachable here")
    p.add_argument("--epochs", type=positive, default=3, help="at most this many passes (default 3)")
    p.add_argument("--patience", type=positive, default=2, help="stop after this many epochs without a better "
                                                                "held-out loss (default 2)")
    p.add_argument("--lr", type=fraction, default=2e-4, help="learning rate (default 2e-4)")
    p.add_argument("--rank", type=positive, default=8, help="LoRA rank (default 8)")
    p.add_argument("--alpha", type=positive, default=16, help="LoRA alpha (default 16)")
    p.add_argument("--batch-size", type=positive, default=4, help="examples per step (default 4)")
    p.add_argument("--held-out", type=fraction, default=0.2, help="share of the distinct records held out (0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the shuffles and the initialisation")
    p.add_argument("--threshold", type=fraction, help="the router's confidence threshold for the escalation rate "
                                                      "(default: the router's own)")
    p.add_argument("--max-new-tokens", type=positive, default=64, help="answer length for the teacher and the report")
    p.add_argument("--max-len", type=positive, default=512, help="tokens of prompt + answer kept per example (512)")
    p.add_argument("--force", action="store_true", help="replace ADAPTER_DIR if it is a previous distilled adapter (never another folder)")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON on stdout (progress and the table still go to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from edge_sdk.errors import DistillError

    if args.teacher_key_env and not os.environ.get(args.teacher_key_env):
        raise DistillError(f"--teacher-key-env {args.teacher_key_env}: that environment variable is not set")
    try:
        from edge_sdk.exporters.distill import distill
        from edge_sdk.exporters.distill.train import TrainConfig
    except ImportError as e:
        raise DistillError(f"distill needs the export extra (pip install 'edge-sdk[export]'): {e}") from None
    config = TrainConfig(rank=args.rank, alpha=float(args.alpha), lr=args.lr, epochs=args.epochs,
                         patience=args.patience, batch_size=args.batch_size, seed=args.seed)
    # progress goes to stderr with --json too: only stdout is the report (a run takes minutes to tens of them)
    report = distill(args.bundle, args.output, data=args.data, teacher=args.teacher, teacher_model=args.teacher_model,
                     teacher_key=os.environ.get(args.teacher_key_env) if args.teacher_key_env else None,
                     prompts=args.prompts, bake_system=args.bake_system, source=args.source, config=config,
                     held_out=args.held_out, threshold=args.threshold, max_new_tokens=args.max_new_tokens,
                     max_len=args.max_len, force=args.force)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"adapter written to {args.output} (report.json beside it); {switch_in_hint(args.bundle, args.output)}")
    return 0


def switch_in_hint(bundle, adapter) -> str:
    """How to use the adapter with this bundle: `adapter add` needs adapter slots (a bundle exported with
    --adapters); a bundle without them takes it only through a new export of its source."""
    import json
    from pathlib import Path

    manifest = json.loads((Path(bundle) / "edge_manifest.json").read_text(encoding="utf-8"))
    if manifest.get("lora"):
        return f"switch it in with `edge-sdk adapter add {bundle} NAME={adapter}`"
    source = (manifest.get("provenance") or {}).get("source") or "SOURCE"
    recipe = (manifest.get("quantization") or {}).get("recipe")
    same = f" --recipe {recipe}" if recipe else ""
    return (f"{bundle} has no adapter slots: export it again with the adapter switchable "
            f"(`edge-sdk export {source}{same} --adapters NAME={adapter} --output NEW_BUNDLE`) "
            f"or merged (`--adapter {adapter}`)")
