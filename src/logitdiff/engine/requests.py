"""What a pass can be asked to gather, and the one protocol through which the pass feeds it.

A request names one statistic of one (S, T) slot; it makes the accumulator that gathers it and reads
its result from that accumulator once the pass is over. The pass (`streaming_pass`) knows requests and
accumulators only through `Request` and `Accumulator`, so a new kind of statistic is one request class
and one accumulator class, and no change to the pass.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

import torch

from logitdiff.core.errors import UserError
from logitdiff.engine.accumulators import ResidualMeansAccumulator, TopKCodes, TopKCountsAccumulator
from logitdiff.engine.limits import check_adl_positions, check_top_k
from logitdiff.engine.record import RequestRecord
from logitdiff.engine.stats import AdlStats, LogitDiffCounters, absolute_layer


class Accumulator(Protocol):
    """Running sums of one (S, T) slot of one variant, fed batch by batch on the readout's device."""

    layers: frozenset[int]  # residual blocks (absolute indices) whose outputs it reads; empty: none

    def add_residuals(self, base: dict[int, torch.Tensor], ft: dict[int, torch.Tensor]) -> None:
        """Per block of `layers`: [n, T, H] outputs of both models at this slot's n texts of the batch,
        all T positions of the slot (the BOS position too: leaving it out is the accumulator's part).
        Called only when `layers` is not empty."""
        ...

    def add_logits(self, d: torch.Tensor, pos_codes: torch.Tensor, neg_codes: torch.Tensor, codes: TopKCodes) -> None:
        """d: [N, V] fp32 logits_ft − logits_base at this slot's counted positions in one readout block.
        pos_codes / neg_codes: [N, K_max], row i the `codes.encode`d ids of d[i] in order of falling /
        rising d, ranked at least as deep as the deepest request of the slot; deeper ranks hold
        `codes.unranked`. The codes are ranked once per block and shared by every accumulator.
        Called only when a request with depth > 0 reads this accumulator."""
        ...


class Request(Protocol):
    """One statistic of the first `positions` tokens of the first `samples` usable texts (a frozen,
    hashable dataclass: the pass's results are keyed by it)."""

    @property
    def samples(self) -> int: ...

    @property
    def positions(self) -> int: ...

    @property
    def depth(self) -> int:
        """How deep the positions' top-K largest / smallest ids must be ranked; 0: it reads no logits.

        A request's, not its accumulator's: one accumulator may serve several K, and the codes need
        a bucket at each K (`TopKCodes`)."""
        ...

    def validate(self, vocab: int, model_name: str) -> None:
        """Raise a one-line UserError when the request cannot be computed for this model."""
        ...

    def accumulator_key(self, num_layers: int) -> Hashable:
        """Requests of one (S, T) slot with equal keys share one accumulator."""
        ...

    def new_accumulator(self, num_layers: int, hidden: int, device: torch.device, first_position: int) -> Accumulator: ...

    def read(self, acc: Accumulator, num_layers: int) -> object:
        """This request's result from the (possibly shared) accumulator its key names."""
        ...

    def record(self, num_layers: int) -> RequestRecord: ...


def check_top_k_request(what: str, samples: int, positions: int, top_k: int, vocab: int, model_name: str) -> None:
    """The one-line error of a request that ranks each position's top K: S, T, K ≥ 1 and K within the vocabulary."""
    if min(samples, positions, top_k) < 1:
        raise UserError(f"{what} S, T, K ≥ 1; got S={samples} T={positions} K={top_k}")
    check_top_k(top_k, vocab, model_name)


@dataclass(frozen=True)
class TopKCountsRequest:
    """LogitDiff's counters: per id, how often it is among a position's `top_k` largest / smallest d,
    Σ d, and how often d > 0."""

    samples: int
    positions: int
    top_k: int

    @property
    def depth(self) -> int:
        return self.top_k

    def validate(self, vocab: int, model_name: str) -> None:
        check_top_k_request("LogitDiff needs", self.samples, self.positions, self.top_k, vocab, model_name)

    def accumulator_key(self, num_layers: int) -> Hashable:
        # One accumulator per slot counts every K: a K is a bucket of the codes' histogram, so Σ d and
        # the positive counts are summed once, whatever the number of K.
        return "top-k counts"

    def new_accumulator(self, num_layers: int, hidden: int, device: torch.device, first_position: int) -> TopKCountsAccumulator:
        return TopKCountsAccumulator()

    def read(self, acc: Accumulator, num_layers: int) -> LogitDiffCounters:
        assert isinstance(acc, TopKCountsAccumulator)
        return acc.result(self.samples, self.positions, self.top_k)

    def record(self, num_layers: int) -> RequestRecord:
        return RequestRecord(method="logitdiff", samples=self.samples, positions=self.positions, top_k=self.top_k)


@dataclass(frozen=True)
class ResidualMeansRequest:
    """ADL's statistics: per-position means of one block's outputs (base, finetuned, their difference)
    and their mean norms."""

    samples: int
    positions: int
    layer: float  # relative layer r; the block is floor(r·(L−1))

    @property
    def depth(self) -> int:
        return 0

    def validate(self, vocab: int, model_name: str) -> None:
        if self.samples < 1:
            raise UserError(f"ADL needs S ≥ 1; got S={self.samples}")
        check_adl_positions(self.positions)
        if not 0.0 <= self.layer <= 1.0:
            raise UserError(f"ADL relative layer must be within [0, 1], got {self.layer}")

    def accumulator_key(self, num_layers: int) -> Hashable:
        # Relative layers that fall on the same block read the same sums.
        return ("residual means", absolute_layer(self.layer, num_layers))

    def new_accumulator(self, num_layers: int, hidden: int, device: torch.device, first_position: int) -> ResidualMeansAccumulator:
        return ResidualMeansAccumulator(absolute_layer(self.layer, num_layers), self.positions, hidden, device, first_position)

    def read(self, acc: Accumulator, num_layers: int) -> AdlStats:
        assert isinstance(acc, ResidualMeansAccumulator)
        return acc.result(self.layer, absolute_layer(self.layer, num_layers))

    def record(self, num_layers: int) -> RequestRecord:
        return RequestRecord(
            method="adl", samples=self.samples, positions=self.positions, relative_layer=self.layer, layer=absolute_layer(self.layer, num_layers)
        )
