"""What one engine pass produces per requested cell: LogitDiff counters and ADL statistics (CPU tensors)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LogitDiffCounters:
    """Counts over all `positions` positions of the cell's S texts (first T tokens each), per vocabulary id."""

    samples: int
    positions_per_text: int
    top_k: int
    positions: int  # total positions counted: S·T, or S·(T−1) when the BOS position is left out
    count_pos: torch.Tensor  # [V] int64: #positions with the id among the K largest d
    count_neg: torch.Tensor  # [V] int64: #positions with the id among the K smallest d
    sum_diff: torch.Tensor  # [V] float64: Σ d
    npos: torch.Tensor  # [V] int64: #positions with d > 0

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"count_pos": self.count_pos, "count_neg": self.count_neg, "sum_diff": self.sum_diff, "npos": self.npos}


@dataclass(frozen=True)
class AdlStats:
    """Per-position means of the layer-l residual over the cell's S texts, and mean norms at positions ≥ 5."""

    samples: int
    positions_per_text: int
    first_position: int  # 1 when the BOS position is left out (--drop-bos), else 0
    relative_layer: float
    layer: int  # absolute decoder block index
    delta_mean: torch.Tensor  # [T − first_position, H] float32: mean of h_ft − h_base, row i = position first_position + i
    base_mean: torch.Tensor  # [T − first_position, H] float32
    ft_mean: torch.Tensor  # [T − first_position, H] float32
    base_norm: float  # mean L2 norm of h_base over positions ≥ 5
    ft_norm: float

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"delta_mean": self.delta_mean, "base_mean": self.base_mean, "ft_mean": self.ft_mean}


def absolute_layer(relative: float, num_layers: int) -> int:
    """floor(r·(L−1)) (KEEP: Gemma-3-1B 26 layers, r=0.5 -> 12)."""
    if not 0.0 <= relative <= 1.0:
        raise ValueError(f"relative layer must be within [0, 1], got {relative}")
    return math.floor(relative * (num_layers - 1))
