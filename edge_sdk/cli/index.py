"""edge-sdk index add|ls|rm|search INDEX ...: a local index of documents for retrieval (edge_sdk.rag)."""
from __future__ import annotations

import argparse

from ._common import positive

EPILOG = """\
The index is one file (SQLite) holding the documents' chunks and their vectors. It remembers the
embedder it was created with (and where its bundle was), so later commands need no --embedder; an
index only ever takes vectors from that embedder (same fingerprint).

Readable documents: .txt .text .rst .log .md .markdown, text files without an extension, and .pdf
when pypdf is installed (pip install pypdf). Folders are searched recursively; hidden files and
folders are skipped.

examples:
  edge-sdk index add docs.index ~/notes manual.pdf --embedder bundles/minilm
  edge-sdk index add docs.index ~/notes          # again later: only new and changed files are embedded
  edge-sdk index ls docs.index
  edge-sdk index search docs.index "how do I reset the router?" -k 3
  edge-sdk index rm docs.index ~/notes/old       # a folder: every indexed file under it

Symbolic links inside a folder are not followed (a link can lead anywhere, e.g. to ~/.ssh); they
are listed as "not followed". Names are printed with control characters and bidi overrides escaped.

exit status: 0 ok; 1 some files could not be indexed (the others were) or were not in the index;
2 bad usage, or the index or the embedder cannot be used.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="index documents on this device and search them (for `edge-sdk ask`)",
                       description="Build and query a local index of documents: chunks of your files embedded with "
                                   "an embedder bundle, searched by meaning.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    add = verbs.add_parser("add", help="index files and folders (creates the index if missing)",
                           description="Add files, and the documents under folders, to INDEX. Unchanged files are "
                                       "skipped; changed ones are re-indexed. Files that cannot be read are reported "
                                       "and the rest are indexed (exit status 1).")
    add.add_argument("index", metavar="INDEX", help="the index file (created if missing, then --embedder is needed)")
    add.add_argument("paths", metavar="PATH", nargs="+", help="files and folders to index")
    add.add_argument("--embedder", metavar="DIR", help="embedder bundle folder; needed to create the index, "
                                                       "otherwise the one recorded in the index is used")
    add.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add.set_defaults(func=run_add)

    ls = verbs.add_parser("ls", help="list the indexed files",
                          description="List the files in INDEX with their chunks and tokens, and the embedder.")
    ls.add_argument("index", metavar="INDEX", help="the index file")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=run_ls)

    rm = verbs.add_parser("rm", help="remove files from the index",
                          description="Remove files (or every indexed file under a folder) from INDEX. The files "
                                      "themselves are not touched and need not exist any more.")
    rm.add_argument("index", metavar="INDEX", help="the index file")
    rm.add_argument("paths", metavar="PATH", nargs="+", help="indexed files or folders")
    rm.add_argument("--json", action="store_true", help="print one JSON object")
    rm.set_defaults(func=run_rm)

    search = verbs.add_parser("search", help="the chunks most similar to a query (to check retrieval)",
                              description="Print the K chunks of INDEX most similar to QUERY (cosine similarity "
                                          "of their embeddings), best first.")
    search.add_argument("index", metavar="INDEX", help="the index file")
    search.add_argument("query", metavar="QUERY", help="what to look for ('-' reads it from standard input)")
    search.add_argument("-k", type=positive, default=5, metavar="N", help="how many chunks (default 5)")
    search.add_argument("--embedder", metavar="DIR", help="embedder bundle, if it moved since the index was made "
                                                          "(must be the same model)")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.set_defaults(func=run_search)


# -- verbs ---------------------------------------------------------------------------------------
def run_add(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from edge_sdk.runtime.display import json_text, printable
    from edge_sdk.runtime.rag import Index

    from ._common import progress_printer

    path = Path(args.index)
    creating = not path.exists()
    if creating and not args.embedder:
        from edge_sdk.errors import DocumentIndexError

        raise DocumentIndexError(f"{path} does not exist; creating it needs --embedder DIR (an embedder bundle)")
    if not creating:
        _index_meta(path)  # a bad INDEX is reported before the embedder loads
    embedder = _load_embedder(args.embedder) if args.embedder else _recorded_embedder(path)
    show = progress_printer(args.quiet)
    with Index.open(path, embedder, create=True) as index:
        if show:
            show(f"{'creating' if creating else 'updating'} {printable(path)} with "
                 f"{printable(index.embedder_info.get('name'))}")

        def progress(done: int, total: int, file: str) -> None:
            show(f"[{done}/{total}] {printable(file)}")

        report = index.add(args.paths, progress=progress if show else None)
        total = len(index)
    if args.json:
        print(json_text({"index": str(path), **report.as_dict(), "total_chunks": total}))
    else:
        removed = f", {len(report.removed)} removed (gone from disk)" if report.removed else ""
        print(f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged{removed}, "
              f"{len(report.failed)} failed ({report.chunks} chunks embedded; {total} in the index)")
        for file, reason in report.failed:
            print(f"  failed: {printable(file)}: {printable(reason)}")
        for link in report.links:
            print(f"  not followed (a symbolic link): {printable(link)}")
    if report.failed:
        print(f"error: {len(report.failed)} file(s) could not be indexed (the others were)", file=sys.stderr)
        return 1
    return 0


def run_ls(args: argparse.Namespace) -> int:
    import time

    from edge_sdk.runtime.display import json_text, printable
    from edge_sdk.runtime.rag import Index

    with Index.open(args.index) as index:
        files, chunks = index.files(), len(index)
        info = {"index": str(args.index), "embedder": index.embedder_info, "embedder_bundle": index.embedder_bundle,
                "dim": index.dim, "chunk_tokens": index.chunk_tokens, "overlap_tokens": index.overlap_tokens,
                "chunks": chunks, "files": [f.__dict__ for f in files]}
    if args.json:
        print(json_text(info))
        return 0
    print(f"{printable(args.index)}: {len(files)} files, {chunks} chunks; embedder "
          f"{printable(info['embedder'].get('name'))} ({info['dim']} dims, chunks of {info['chunk_tokens']} tokens)")
    if files:
        print(f"{'chunks':>7} {'tokens':>8}  {'indexed':16}  path")
    for f in files:
        print(f"{f.chunks:>7} {f.tokens:>8}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(f.added))}  "
              f"{printable(f.path)}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from edge_sdk.runtime.display import json_text, printable
    from edge_sdk.runtime.rag import Index

    with Index.open(args.index) as index:
        removed = index.remove(args.paths)
    # A path is "not found" when nothing was removed at or under it.
    missing = [p for p in args.paths if not any(r == str(Path(p).expanduser().resolve()) or
                                                r.startswith(str(Path(p).expanduser().resolve()).rstrip("/") + "/")
                                                for r in removed)]
    if args.json:
        print(json_text({"index": str(args.index), "removed": removed, "not_found": missing}))
    else:
        print(f"{len(removed)} file(s) removed")
        for p in removed:
            print(f"  removed: {printable(p)}")
    if missing:
        print(f"error: not in the index: {', '.join(map(printable, missing))} (see edge-sdk index ls "
              f"{printable(args.index)})", file=sys.stderr)
        return 1
    return 0


def run_search(args: argparse.Namespace) -> int:
    from edge_sdk.runtime.display import json_text, printable
    from edge_sdk.runtime.rag import Index

    from ._common import read_text_arg

    query = read_text_arg(args.query, "QUERY")
    embedder = _load_embedder(args.embedder) if args.embedder else _recorded_embedder(args.index)
    with Index.open(args.index, embedder) as index:
        hits = index.search(query, k=args.k)
    if args.json:
        print(json_text({"query": query, "hits": [h.__dict__ for h in hits]}))
        return 0
    if not hits:
        print("the index is empty")
    for rank, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())  # a document's text is untrusted too (an ANSI-coloured .log)
        print(f"{rank}. {h.score:.3f}  {printable(h.path)}#{h.chunk_no} [{h.start}:{h.end}]")
        print(f"   {printable(snippet[:300])}{'...' if len(snippet) > 300 else ''}")
    return 0


# -- the embedder --------------------------------------------------------------------------------
def _load_embedder(bundle):
    import edge_sdk

    return edge_sdk.load(bundle, kind="embedder")  # a decoder bundle: a BundleError that says which to export


def _recorded_embedder(index_path):
    """The embedder recorded in an existing index, loaded from its bundle path (Index.open then checks that
    it is still the same model, by fingerprint)."""
    from pathlib import Path

    from edge_sdk.errors import DocumentIndexError

    from edge_sdk.runtime.display import printable

    meta = _index_meta(index_path)  # types checked (Store.meta)
    bundle, name = meta.get("embedder_bundle"), meta["embedder"]["name"]
    if not bundle or not Path(bundle).is_dir():
        raise DocumentIndexError(f"{printable(index_path)} was made with the embedder {printable(repr(name))} from "
                                 f"{printable(bundle)}, which is not there any more; pass --embedder DIR (the same model)")
    return _load_embedder(bundle)


def _index_meta(index_path) -> dict:
    """The metadata of the index at `index_path` (DocumentIndexError if it is not a usable index)."""
    from edge_sdk.runtime.rag.store import Store

    store = Store.open(index_path)
    try:
        return store.meta()
    finally:
        store.close()
