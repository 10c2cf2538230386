"""LogitDiff TopK orderings (SPEC §3): pure functions of the pass counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

if TYPE_CHECKING:  # the registry reads ORDERINGS and OrderingEntry at `--check`, before torch may load
    from transformers import PreTrainedTokenizerBase

    from logitdiff.engine.stats import LogitDiffCounters

MIN_ENTRIES = 100
ORDERINGS = ("top_k_occurring", "fraction_positive_diff")


class OrderingEntry(BaseModel):
    """count_pos / count_neg are the counts behind this ordering's value (as in the reference):
    top_k_occurring: #positions with the id among the K largest / K smallest d;
    fraction_positive_diff: #positions with d > 0 / with d ≤ 0 (the two add up to all positions)."""

    token_id: int
    token: str  # tokenizer.decode([token_id]), e.g. " cake"
    value: float
    avg_diff: float
    count_pos: int
    count_neg: int


def ranked_ids(value: np.ndarray, avg_diff: np.ndarray, n: int) -> np.ndarray:
    """The first n ids by (value desc, avg diff desc, id asc): ties are common, so the order is total."""
    ids = np.arange(len(value))
    return np.lexsort((ids, -avg_diff, -value))[:n]


def orderings(counters: LogitDiffCounters, tokenizer: PreTrainedTokenizerBase, top_k: int) -> dict[str, list[OrderingEntry]]:
    """Both orderings, each with max(100, K) entries (fewer only if the vocabulary is smaller)."""
    positions = counters.positions
    count_pos = counters.count_pos.numpy()
    count_neg = counters.count_neg.numpy()
    avg = counters.sum_diff.numpy().astype(np.float64) / positions
    values = {
        "top_k_occurring": 100.0 * count_pos.astype(np.float64) / positions,
        "fraction_positive_diff": counters.npos.numpy().astype(np.float64) / positions,
    }
    npos = counters.npos.numpy()
    counts = {
        "top_k_occurring": (count_pos, count_neg),
        "fraction_positive_diff": (npos, positions - npos),
    }
    n = min(len(count_pos), max(MIN_ENTRIES, top_k))
    out: dict[str, list[OrderingEntry]] = {}
    for name in ORDERINGS:
        value = values[name]
        pos, neg = counts[name]
        out[name] = [
            OrderingEntry(
                token_id=int(i),
                token=tokenizer.decode([int(i)]),
                value=float(value[i]),
                avg_diff=float(avg[i]),
                count_pos=int(pos[i]),
                count_neg=int(neg[i]),
            )
            for i in ranked_ids(value, avg, n)
        ]
    return out
