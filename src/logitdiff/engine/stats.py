"""What one engine pass produces per requested cell: LogitDiff counters and ADL statistics (CPU tensors)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The tensors a cell's result holds, name -> (dtype, rank), declared once: the accumulators allocate
# these dtypes, `tensors()` hands these names to the store, and the store checks a file against them
# before it reuses it.
COUNTERS: dict[str, tuple[torch.dtype, int]] = {
    "count_pos": (torch.int64, 1),
    "count_neg": (torch.int64, 1),
    "sum_diff": (torch.float64, 1),
    "npos": (torch.int64, 1),
}
ADL_VECTORS: dict[str, tuple[torch.dtype, int]] = {"delta_mean": (torch.float32, 2), "base_mean": (torch.float32, 2), "ft_mean": (torch.float32, 2)}


@dataclass(frozen=True)
class LogitDiffCounters:
    """Counts over all `positions` positions of the cell's S texts (first T tokens each), per vocabulary id."""

    samples: int
    positions_per_text: int
    top_k: int
    positions: int  # total positions counted: S·T, or S·(T−1) when the BOS position is left out
    # [V] each, dtypes as COUNTERS declares them
    count_pos: torch.Tensor  # #positions with the id among the K largest d
    count_neg: torch.Tensor  # #positions with the id among the K smallest d
    sum_diff: torch.Tensor  # Σ d
    npos: torch.Tensor  # #positions with d > 0

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in COUNTERS}


@dataclass(frozen=True)
class AdlStats:
    """Per-position means of the layer-l residual over the cell's S texts, and mean norms at positions ≥ 5."""

    samples: int
    positions_per_text: int
    first_position: int  # 1 when the BOS position is left out (--drop-bos), else 0
    relative_layer: float
    layer: int  # absolute decoder block index
    # [T − first_position, H] each, dtypes as ADL_VECTORS declares them
    delta_mean: torch.Tensor  # mean of h_ft − h_base, row i = position first_position + i
    base_mean: torch.Tensor
    ft_mean: torch.Tensor
    base_norm: float  # mean L2 norm of h_base over positions ≥ 5
    ft_norm: float

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in ADL_VECTORS}


def absolute_layer(relative: float, num_layers: int) -> int:
    """floor(r·(L−1)) (KEEP: Gemma-3-1B 26 layers, r=0.5 -> 12)."""
    if not 0.0 <= relative <= 1.0:
        raise ValueError(f"relative layer must be within [0, 1], got {relative}")
    return math.floor(relative * (num_layers - 1))
