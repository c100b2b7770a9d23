"""edge-sdk ask BUNDLE --index INDEX QUESTION: an answer from your documents, with its sources."""
from __future__ import annotations

import argparse

from ._common import add_load_args, add_sampling_args, positive, sampling_kwargs

EPILOG = """\
The question is embedded with the index's own embedder (recorded when the index was created), the k
closest chunks are put into the prompt, numbered, best first (the lowest-ranked are dropped if they do
not fit the model's context), followed by the question. The sources the answer draws on are printed
under it: the ones it cites as [n], or else the ones sharing most words with it, each with its
similarity to the question and its evidence: how relevant to the question the best sentence of that
source holding the answer's own words is (0..1).

"Not in your documents." is the answer (exit status 0; --json: "abstained": true and the reason) when no
sentence of the sources is relevant enough to the question (the model is not asked), or when none
backs the model's answer (then shown as the unsupported draft). --always-answer prints the model's
answer whatever the evidence.

examples:
  edge-sdk index add docs.index ~/notes --embedder bundles/minilm
  edge-sdk ask bundles/smollm2 --index docs.index "How many leave days do I get?"
  edge-sdk ask bundles/smollm2 --index docs.index "..." --json -k 2
  edge-sdk ask bundles/smollm2 --index docs.index "..." --always-answer
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question from your indexed documents, with sources",
                       description="Answer QUESTION with the decoder BUNDLE from the documents in INDEX "
                                   "(built with `edge-sdk index add`), and show which files and chunks it used.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_args(p)
    p.add_argument("question", metavar="QUESTION", help="the question (use - to read it from stdin)")
    p.add_argument("--index", required=True, metavar="INDEX", help="the document index (edge-sdk index add)")
    p.add_argument("-k", type=positive, default=4, metavar="K", help="chunks to retrieve (default 4)")
    p.add_argument("--embedder", metavar="DIR", help="the index's embedder bundle, if it has moved since indexing")
    p.add_argument("--json", action="store_true", help="print one JSON object: answer, abstained and why, the "
                                                        "evidence scores, cited and given sources")
    p.add_argument("--always-answer", action="store_true",
                   help="never answer \"Not in your documents.\": show the model's answer whatever the evidence")
    add_sampling_args(p)
    p.set_defaults(func=run, max_new_tokens=128)


def run(args: argparse.Namespace) -> int:
    import sys

    from edge_sdk.runtime.display import json_text, printable
    from edge_sdk.runtime.rag import Index, ask

    from ._common import load_model, read_text_arg
    from .index import _load_embedder, _recorded_embedder

    question = read_text_arg(args.question, "QUESTION")
    if not question.strip():
        print("error: the question is empty", file=sys.stderr)
        return 2
    embedder = _load_embedder(args.embedder) if args.embedder else _recorded_embedder(args.index)
    model = load_model(args)
    with Index.open(args.index, embedder) as index:
        if not len(index):
            print(f"error: {args.index} holds no documents; add some with `edge-sdk index add {args.index} FILES`",
                  file=sys.stderr)
            return 2
        answer = ask(model, index, question, k=args.k, abstain=not args.always_answer, **sampling_kwargs(args))
    if args.json:
        print(json_text(answer.as_dict()))  # file names are escaped for the terminal (runtime/display.py)
        return 0
    print(answer.text)
    if answer.abstained == "weak_retrieval":
        print(f"\nNo passage of your documents is close to the question (best {answer.retrieval:.2f}, needs "
              f"{answer.policy.min_retrieval:.2f}); the closest:")
    elif answer.abstained == "unsupported":
        print(f"\nThe model's draft, not backed by your documents (evidence {answer.support:.2f}, needs "
              f"{answer.policy.min_support:.2f}):\n  {' '.join(answer.draft.split())}\nThe passages it was given:")
    else:
        print("\nSources" + ("" if answer.cited else " given to the model (the answer cites none)") + ":")
    for s in answer.cited or answer.sources:
        print(f"  [{s.n}] {printable(s.path)} ({source_scores(s)})")
    return 0


def source_scores(s) -> str:
    evidence = "" if s.evidence is None else f", evidence {s.evidence:.2f}"
    return f"chunk {s.chunk_no}, similarity {s.score:.2f}{evidence}"
