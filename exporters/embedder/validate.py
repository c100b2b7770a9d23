"""Validation inside an embedder export: the bundle, run by our runtime, against sentence-transformers.

- tokenizer parity: the ids our Embedder feeds the graph ([CLS] ... [SEP], truncated) versus HF
  `tokenizers` on the exported tokenizer.json, over the decoder checks' varied texts plus a long one;
- embeddings: cosine similarity to `SentenceTransformer.encode` of the same texts, per text;
- retrieval: the top-5 passages of each query in a small corpus (corpus.py), ours versus theirs.
A failing gate raises ValidationFailedError naming the figure; the figures go into the manifest.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import ValidationFailedError

from ..validate import TOKENIZER_TEXTS, Check
from .corpus import PASSAGES, QUERIES

# The lowest cosine to sentence-transformers any text may have, per recipe (issue 14's bounds).
MIN_COSINE = {"fp32": 0.9999, "int8": 0.99}
TOP_K = 5
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog near the riverbank."] * 60)  # > 512 tokens


def _tokens(embedder, bundle_dir: Path) -> Check:
    from tokenizers import Tokenizer as HFTokenizer

    ref = HFTokenizer.from_file(str(bundle_dir / embedder.manifest["tokenizer"]["file"]))
    ref.no_padding()
    ref.enable_truncation(embedder.manifest["embedding"]["max_tokens"])
    bad = [t[:40] for t in TOKENIZER_TEXTS + [LONG_TEXT] if embedder.token_ids(t) != ref.encode(t).ids]
    figures = {"texts": len(TOKENIZER_TEXTS) + 1, "mismatches": len(bad), "backend": embedder.tokenizer.backend}
    return Check("tokenizer_parity", not bad, figures, f"token ids differ from HF tokenizers on {bad[:3]}" if bad else "")


def _cosines(embedder, reference, recipe: str) -> tuple[Check, np.ndarray, np.ndarray]:
    texts = TOKENIZER_TEXTS + [LONG_TEXT] + PASSAGES + QUERIES
    ours = embedder.embed(texts)
    theirs = reference.encode(texts, convert_to_numpy=True, normalize_embeddings=False).astype(np.float32)
    cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1) + 1e-12)
    bound = MIN_COSINE.get(recipe, 0.99)
    worst = int(cos.argmin())
    figures = {"texts": len(texts), "min_cosine": round(float(cos.min()), 6), "median_cosine": round(float(np.median(cos)), 6),
               "bound": bound, "max_abs_diff": float(np.abs(ours - theirs).max())}
    ok = float(cos.min()) >= bound
    msg = "" if ok else f"cosine to sentence-transformers {cos.min():.5f} < {bound} on {texts[worst][:40]!r}"
    return Check("embeddings", ok, figures, msg), ours, theirs


def _retrieval(ours: np.ndarray, theirs: np.ndarray, recipe: str) -> Check:
    """Our top-5 against sentence-transformers' top-5, position by position.

    Past the one right passage, a query's neighbours are often near-ties (0.188 and 0.188 in the
    reference): a difference of 1e-3 in a vector swaps them. A position counts as the same when it
    holds the same passage, or one whose reference score is within `tol` of the reference's own
    passage there (fp32 1e-4, quantized 0.01)."""
    n_p, n_q = len(PASSAGES), len(QUERIES)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    ref_scores = unit(theirs[-n_q:]) @ unit(theirs[-(n_p + n_q):-n_q]).T  # [queries, passages]
    top_ours = np.argsort(-(unit(ours[-n_q:]) @ unit(ours[-(n_p + n_q):-n_q]).T), axis=1)[:, :TOP_K]
    top_ref = np.argsort(-ref_scores, axis=1)[:, :TOP_K]
    tol = 1e-4 if recipe == "fp32" else 0.01
    identical = swaps = wrong = wrong_first = 0
    for q in range(n_q):
        identical += int((top_ours[q] == top_ref[q]).all())
        gap = np.abs(ref_scores[q, top_ours[q]] - ref_scores[q, top_ref[q]])  # 0 where the passage is the same
        swaps += int(((top_ours[q] != top_ref[q]) & (gap <= tol)).sum())
        wrong += int((gap > tol).any())
        wrong_first += int(gap[0] > tol)
    figures = {"queries": n_q, "passages": n_p, "k": TOP_K, "identical_top_k": identical, "near_tie_swaps": swaps,
               "tie_tolerance": tol, "same_first": n_q - wrong_first}
    ok = not wrong
    msg = "" if ok else (f"top-{TOP_K} retrieval differs from sentence-transformers beyond near-ties on {wrong} of {n_q} "
                         f"queries (first passage differs on {wrong_first})")
    return Check("retrieval", ok, figures, msg)


def validate_embedder(bundle_dir: Path, reference, recipe: str, progress, device: str | None = None) -> dict[str, Any]:
    import sentence_transformers

    from edge_sdk.runtime.model import load

    embedder = load(bundle_dir, device=device, tokenizer_backend="pure")
    checks = [_tokens(embedder, bundle_dir)]
    progress.note(f"tokenizer parity: {checks[0].figures['mismatches']} mismatches on {checks[0].figures['texts']} texts")
    cos_check, ours, theirs = _cosines(embedder, reference, recipe)
    checks.append(cos_check)
    f = cos_check.figures
    progress.note(f"embeddings: cosine to sentence-transformers min {f['min_cosine']:.6f}, median {f['median_cosine']:.6f} "
                  f"over {f['texts']} texts (bound {f['bound']})")
    checks.append(_retrieval(ours, theirs, recipe))
    f = checks[-1].figures
    progress.note(f"retrieval: top-{TOP_K} identical on {f['identical_top_k']}/{f['queries']} queries, "
                  f"{f['near_tie_swaps']} swaps of near-ties (within {f['tie_tolerance']}), first passage the same on "
                  f"{f['same_first']}/{f['queries']}")
    section = {"passed": all(c.passed for c in checks if c.gating),
               "reference": f"sentence-transformers {sentence_transformers.__version__}",
               "executed_on": device or "the bundle's own device profile",
               "checks": [asdict(c) for c in checks]}
    failed = [c for c in checks if c.gating and not c.passed]
    if failed:
        raise ValidationFailedError("validation failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed))
    return section
