"""Retrieval-augmented generation on the device: a local index of the user's documents, and answers
grounded in them with citations.

    import edge_sdk
    from edge_sdk.rag import Index

    embedder = edge_sdk.load("bundles/minilm")                  # an embedder bundle
    with Index.open("docs.index", embedder, create=True) as index:
        report = index.add(["notes/", "manual.pdf"])            # re-adding skips unchanged files
        for hit in index.search("how do I reset the device?", k=3):
            print(f"{hit.score:.2f} {hit.path}#{hit.chunk_no} {hit.text[:60]!r}")

    model = edge_sdk.load("bundles/smollm2")                    # a decoder
    answer = ask(model, Index.open("docs.index", embedder), "How do I reset the device?")
    print(answer.text, [(s.path, s.chunk_no, s.evidence) for s in answer.cited])
    if answer.abstained:                                        # the text is NOT_IN_DOCUMENTS
        print("the documents do not answer this:", answer.abstained, answer.draft)

Modules: chunking (token-sized, sentence-aware chunks), readers (files to text), store (the SQLite
file), index (Index: add / remove / files / search), grounded (prepare / ask / cited_sources),
evidence (how well the sources back an answer; when to say NOT_IN_DOCUMENTS).
"""
from .chunking import Chunk, chunk_text
from .evidence import NOT_IN_DOCUMENTS, Policy
from .grounded import Answer, GroundedPrompt, Source, after_generating, ask, before_generating, cited_sources, prepare
from .index import AddReport, Hit, Index
from .readers import SUPPORTED_SUFFIXES, read_document
from .store import FileEntry

__all__: list[str] = [
    "Index", "AddReport", "FileEntry", "Hit", "Chunk", "chunk_text", "read_document", "SUPPORTED_SUFFIXES",
    "ask", "prepare", "cited_sources", "Answer", "GroundedPrompt", "Source", "before_generating", "after_generating",
    "NOT_IN_DOCUMENTS", "Policy",
]
