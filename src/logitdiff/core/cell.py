"""The identity of one grid cell: what determines its result, its pass key and its label.

It sits at the bottom of the stack because the results store, the report and the experiments all
name results by cell; only the experiments create cells (`experiments.grid.expand`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Method = Literal["logitdiff", "adl"]
AdlReadout = Literal["lens", "patchscope"]


class Cell(BaseModel):
    """One point of a grid: everything that determines its result."""

    model_config = ConfigDict(frozen=True)

    index: int
    experiment: str
    model: str
    organism: str
    variant: str
    corpus: str
    seed: int
    method: Method
    samples: int
    positions: int
    top_k: int
    adl_layer: float
    swept: str
    value: str | int
    readout: AdlReadout = "lens"  # how ADL reads δ (SPEC §4); LogitDiff cells keep the default
    drop_bos: bool = False  # the BOS position left out of the counts (--drop-bos): another result

    @property
    def pass_key(self) -> tuple[str, str, str, str, int]:
        """The pair pass of this cell's variant alone."""
        return (self.model, self.organism, self.variant, self.corpus, self.seed)

    @property
    def method_label(self) -> str:
        """'logitdiff', 'adl' (logit lens) or 'adl-patchscope'."""
        return f"{self.method}-{self.readout}" if self.method == "adl" and self.readout != "lens" else self.method

    @property
    def result_key(self) -> tuple[object, ...]:
        """Everything its stored result depends on (the store's path), not which experiment asked for it.
        drop_bos adds a part only when set, so the key (and folder) of a default cell stays the one
        results were stored under before drop_bos was part of it."""
        key = (*self.pass_key, self.method_label, self.samples, self.positions, self.top_k, self.adl_layer if self.method == "adl" else None)
        return (*key, "nobos") if self.drop_bos else key

    def label(self) -> str:
        method = f" {self.method_label}" if self.method == "adl" or self.swept == "variant" else ""
        return f"{self.organism} #{self.index} seed={self.seed} {self.swept}={self.value}{method}"
