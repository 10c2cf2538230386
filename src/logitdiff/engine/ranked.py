"""The top and bottom ranks of d at every position, each position ranked only as deep as its cells need.

One pass fills cells of several K (and of several S, T), but a position only needs the largest K of
the cells that count it: in a study, the top-5000 of topk-depth's deepest cell is needed at its own
positions, while the positions only the K=100 cells count are ranked to 100. On the CPU a top-5000
over Gemma's vocabulary costs about six times a top-100, so ranking every position to the deepest K
would spend most of the statistics' time on ranks nobody counts.
"""

from __future__ import annotations

import torch

from logitdiff.engine.accumulators import TopKCodes


def ranked_codes(d: torch.Tensor, depth: torch.Tensor, codes: TopKCodes) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes of the ranked largest and smallest ids of every row of d [N, V].

    depth [N]: how many ranks row i needs (one of `codes.ks`, or 0 for none). Returns two [N, K_max]
    code tensors; ranks a row was not ranked to hold `codes.unranked`, which no histogram counts.
    """
    k_max = codes.ks[-1]
    levels = [int(k) for k in depth.unique().tolist() if k > 0]
    if levels == [k_max] and bool((depth == k_max).all()):  # one depth for all (e.g. mix-ratio): no gather
        return _ranked(d, k_max, codes)
    pos = torch.full((d.shape[0], k_max), codes.unranked, dtype=torch.int64, device=d.device)
    neg = torch.full_like(pos, codes.unranked)
    for k in levels:
        rows = (depth == k).nonzero().squeeze(1)
        pos[rows, :k], neg[rows, :k] = _ranked(d.index_select(0, rows), k, codes)
    return pos, neg


def _ranked(d: torch.Tensor, k: int, codes: TopKCodes) -> tuple[torch.Tensor, torch.Tensor]:
    top = torch.topk(d, k, dim=-1, sorted=True).indices
    bottom = torch.topk(d, k, dim=-1, largest=False, sorted=True).indices
    return codes.encode(top), codes.encode(bottom)
