"""Ranking each position only as deep as its cells need, and the packed positive counts."""

from __future__ import annotations

import torch

from logitdiff.engine.accumulators import TopKCodes, positive_counts
from logitdiff.engine.ranked import ranked_codes


def _naive_counts(d: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    ids = torch.topk(d, k, dim=-1, largest=largest).indices
    return torch.bincount(ids.reshape(-1), minlength=d.shape[1])


def test_each_row_is_counted_at_every_k_up_to_its_depth() -> None:
    gen = torch.Generator().manual_seed(0)
    vocab, ks = 301, [2, 5, 40]
    d = torch.randn(12, vocab, generator=gen)
    depth = torch.tensor([40, 5, 0, 2, 40, 5, 5, 0, 2, 40, 40, 5])
    codes = TopKCodes(ks, vocab, torch.device("cpu"))
    pos, neg = ranked_codes(d, depth, codes)
    for j, k in enumerate(ks):
        rows = depth >= k  # the rows ranked at least this deep count for K = k
        got_pos = codes.histogram(pos[rows])[:, : j + 1].sum(1)
        got_neg = codes.histogram(neg[rows])[:, : j + 1].sum(1)
        assert torch.equal(got_pos, _naive_counts(d[rows], k, largest=True)), k
        assert torch.equal(got_neg, _naive_counts(d[rows], k, largest=False)), k
    assert torch.equal(codes.histogram(pos[depth == 0]), torch.zeros(vocab, len(ks), dtype=torch.int64))  # unranked rows count nowhere
    full_pos, _ = ranked_codes(d, torch.full((12,), 40), codes)  # one depth for every row: ranked without a gather
    assert torch.equal(codes.histogram(full_pos)[:, :2].sum(1), _naive_counts(d, 5, largest=True))


def test_positive_counts_over_many_rows_and_an_odd_vocabulary() -> None:
    gen = torch.Generator().manual_seed(1)
    for rows, vocab in ((1, 8), (600, 301), (256, 1024)):  # > 255 rows: several uint8 lanes' worth
        d = torch.randn(rows, vocab, generator=gen)
        assert torch.equal(positive_counts(d), (d > 0).sum(0))
    assert torch.equal(positive_counts(torch.ones(700, 9)), torch.full((9,), 700))  # every lane at its most, three times over
