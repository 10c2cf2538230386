"""The identity of one grid cell: what determines its result, its pass key and its label.

It sits at the bottom of the stack because the results store, the report and the experiments all
name results by cell; only the experiments create cells (`experiments.grid.expand`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# The readout of a method that is read out one way, and of a method's first readout: labels leave it
# out, so 'adl' is ADL through the logit lens and 'adl-patchscope' its patchscope readout.
DEFAULT_READOUT = "lens"


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
    method: str  # a method of the registry (logitdiff.registry)
    samples: int
    positions: int
    top_k: int
    adl_layer: float
    swept: str
    value: str | int
    readout: str = DEFAULT_READOUT  # how the method's result is read out (ADL: lens or patchscope)
    drop_bos: bool = False  # the BOS position left out of the counts (--drop-bos): another result
    # Options of the method's readout that change its result (e.g. NMF's topic count), as (name, value)
    # pairs; only those that differ from the readout's defaults, so a default cell names none.
    method_options: tuple[tuple[str, str | int | float], ...] = ()

    @property
    def pass_key(self) -> tuple[str, str, str, str, int]:
        """The pair pass of this cell's variant alone."""
        return (self.model, self.organism, self.variant, self.corpus, self.seed)

    @property
    def method_label(self) -> str:
        """'logitdiff', 'adl' (logit lens) or 'adl-patchscope': the method, and its readout unless the default."""
        return self.method if self.readout == DEFAULT_READOUT else f"{self.method}-{self.readout}"

    def label(self) -> str:
        return f"{self.organism} #{self.index} seed={self.seed} {self.swept}={self.value} {self.method_label}"
