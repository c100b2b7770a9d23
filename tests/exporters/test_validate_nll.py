"""The perplexity check's reference side (transformers' logits) is reduced in row blocks, not cast to float64
whole (2 float64 copies of [positions, vocab]: 2.1 GB at Gemma 3's vocabulary): the figure must not change."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_sdk.exporters.validate import reference_nll  # noqa: E402


@pytest.mark.parametrize("rows", [1, 64, 130, 1000])
def test_row_blocks_give_the_whole_mean(rows):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(130, 997, generator=gen) * 3  # 130 positions: not a multiple of the default 64 rows
    targets = torch.randint(0, 997, (130,), generator=gen)
    whole = torch.nn.functional.cross_entropy(logits.double(), targets, reduction="mean").item()
    assert reference_nll(logits, targets, rows=rows) == pytest.approx(whole, rel=1e-12)
