"""Running sums of one (S, T) slot, updated per batch on the model's device; nothing per position is kept.

Each accumulator is a `requests.Accumulator`: the pass feeds it through that protocol only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from logitdiff.engine.limits import ADL_NORM_FROM
from logitdiff.engine.stats import ADL_VECTORS, COUNTERS, AdlStats, LogitDiffCounters

# Column sums run on row blocks of this many elements: each block is summed in fp32 (a float64 sum
# converts d first, ~15× slower on CPU) and added to the float64 total, so rounding stays per block.
_REDUCE_ELEMENTS = 2**22
_BYTE_LANES = 8  # uint8 counters per int64 word
_MAX_LANE_ROWS = 255  # rows whose 0/1 bytes sum within one uint8 lane without a carry


def positive_counts(d: torch.Tensor) -> torch.Tensor:
    """[V] int64: per column, how many rows of d [N, V] are > 0.

    Summing a bool mask over rows goes through an elementwise int64 conversion (~7× a float sum on
    CPU). Instead the 0/1 bytes are read as int64 words and summed over ≤ 255 rows at a time: every
    byte of a word is then an exact per-column count (no carry into its neighbour), read back as uint8.
    """
    v = d.shape[1]
    mask = d.gt(0).view(torch.uint8)
    pad = -v % _BYTE_LANES
    if pad:
        mask = F.pad(mask, (0, pad))
    out = torch.zeros(v + pad, dtype=torch.int64, device=d.device)
    for rows in mask.split(_MAX_LANE_ROWS):
        out += rows.contiguous().view(torch.int64).sum(0).view(torch.uint8)
    return out[:v]


class TopKCodes:
    """Encodes the ranked top-K_max ids of every position so ONE bincount gives the counts for all K.

    Rank r is put in bucket b = #{K in ks : K ≤ r}; an id is in the top-K_j iff its bucket is ≤ j, so the
    count for K_j is the cumulative sum of the bucket histogram up to j.
    """

    def __init__(self, ks: list[int], vocab: int, device: torch.device) -> None:
        self.ks = sorted(set(ks))
        self.vocab = vocab
        ranks = torch.arange(self.ks[-1], device=device)
        self.bucket = torch.searchsorted(torch.tensor(self.ks, device=device), ranks, right=True)
        # The code of a rank a position was not ranked to (it needs fewer than K_max): counted nowhere.
        self.unranked = vocab * len(self.ks)

    def encode(self, ranked_ids: torch.Tensor) -> torch.Tensor:
        """[N, k] ids (rank order, k ≤ K_max) -> [N, k] codes id·n_buckets + bucket."""
        return ranked_ids * len(self.ks) + self.bucket[: ranked_ids.shape[-1]]

    def histogram(self, codes: torch.Tensor) -> torch.Tensor:
        n = self.vocab * len(self.ks)
        return torch.bincount(codes.reshape(-1), minlength=n + 1)[:n].view(self.vocab, len(self.ks))


class TopKCountsAccumulator:
    """Per vocabulary id: how often it is among a position's K largest / smallest d (for every K of the
    variant's codes at once), Σ d, and how often d > 0."""

    def __init__(self) -> None:
        self.layers: frozenset[int] = frozenset()
        # The counters are shaped by the variant's codes, which the pass builds once it knows every
        # request, so they are allocated by the first add_logits.
        self.codes: TopKCodes | None = None
        self.hist_pos = torch.empty(0)
        self.hist_neg = torch.empty(0)
        self.sum_diff = torch.empty(0)
        self.npos = torch.empty(0)
        self.positions = 0

    def add_residuals(self, base: dict[int, torch.Tensor], ft: dict[int, torch.Tensor]) -> None:
        """Never called: `layers` is empty."""

    def add_logits(self, d: torch.Tensor, pos_codes: torch.Tensor, neg_codes: torch.Tensor, codes: TopKCodes) -> None:
        """d: [N, V] fp32 of this slot's positions; codes: [N, K_max] from `TopKCodes.encode`."""
        if self.codes is None:
            v, nk = codes.vocab, len(codes.ks)
            self.codes = codes
            self.hist_pos = torch.zeros(v, nk, dtype=COUNTERS["count_pos"][0], device=d.device)
            self.hist_neg = torch.zeros(v, nk, dtype=COUNTERS["count_neg"][0], device=d.device)
            self.sum_diff = torch.zeros(v, dtype=COUNTERS["sum_diff"][0], device=d.device)
            self.npos = torch.zeros(v, dtype=COUNTERS["npos"][0], device=d.device)
        self.hist_pos += codes.histogram(pos_codes)
        self.hist_neg += codes.histogram(neg_codes)
        for block in d.split(max(1, _REDUCE_ELEMENTS // d.shape[1])):
            self.sum_diff += block.sum(0)
            self.npos += positive_counts(block)
        self.positions += d.shape[0]

    def result(self, samples: int, positions_per_text: int, top_k: int) -> LogitDiffCounters:
        assert self.codes is not None, "no position was counted"
        j = self.codes.ks.index(top_k)
        return LogitDiffCounters(
            samples=samples,
            positions_per_text=positions_per_text,
            top_k=top_k,
            positions=self.positions,
            count_pos=self.hist_pos[:, : j + 1].sum(1).cpu(),
            count_neg=self.hist_neg[:, : j + 1].sum(1).cpu(),
            sum_diff=self.sum_diff.cpu(),
            npos=self.npos.cpu(),
        )


class ResidualMeansAccumulator:
    """Per-position sums of one block's outputs for positions first_position … T−1 (first_position = 1
    leaves the BOS position out), and the sums of their norms from ADL_NORM_FROM on."""

    def __init__(self, block: int, positions: int, hidden: int, device: torch.device, first_position: int) -> None:
        self.layers = frozenset({block})
        self.block = block
        self.first_position = first_position
        self.delta = torch.zeros(positions - first_position, hidden, dtype=torch.float64, device=device)
        self.base = torch.zeros_like(self.delta)
        self.ft = torch.zeros_like(self.delta)
        self.base_norm = torch.zeros((), dtype=torch.float64, device=device)
        self.ft_norm = torch.zeros_like(self.base_norm)
        self.texts = 0

    def add_residuals(self, base: dict[int, torch.Tensor], ft: dict[int, torch.Tensor]) -> None:
        """[n, T, H] per block: this slot's texts (all T positions)."""
        # .to: under a device_map the hooked block may sit on another GPU than the sums.
        hb, hf = base[self.block].to(self.delta.device).float(), ft[self.block].to(self.delta.device).float()
        first = self.first_position
        self.delta += (hf[:, first:] - hb[:, first:]).sum(0, dtype=torch.float64)
        self.base += hb[:, first:].sum(0, dtype=torch.float64)
        self.ft += hf[:, first:].sum(0, dtype=torch.float64)
        self.base_norm += hb[:, ADL_NORM_FROM:].norm(dim=-1).sum(dtype=torch.float64)
        self.ft_norm += hf[:, ADL_NORM_FROM:].norm(dim=-1).sum(dtype=torch.float64)
        self.texts += hb.shape[0]

    def add_logits(self, d: torch.Tensor, pos_codes: torch.Tensor, neg_codes: torch.Tensor, codes: TopKCodes) -> None:
        """Never called: its requests have depth 0."""

    def result(self, relative_layer: float, layer: int) -> AdlStats:
        n, t = self.texts, self.delta.shape[0] + self.first_position
        norm_count = n * (t - ADL_NORM_FROM)
        return AdlStats(
            samples=n,
            positions_per_text=t,
            first_position=self.first_position,
            relative_layer=relative_layer,
            layer=layer,
            delta_mean=(self.delta / n).to(ADL_VECTORS["delta_mean"][0]).cpu(),
            base_mean=(self.base / n).to(ADL_VECTORS["base_mean"][0]).cpu(),
            ft_mean=(self.ft / n).to(ADL_VECTORS["ft_mean"][0]).cpu(),
            base_norm=float(self.base_norm / norm_count),
            ft_norm=float(self.ft_norm / norm_count),
        )
