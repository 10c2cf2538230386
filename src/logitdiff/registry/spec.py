"""What one method (read out one way) brings to a run, in one object: the registry's entries.

Every layer above asks a cell's spec instead of testing the method's name: the engine requests it
fills in the pass, the folder and files its result lives in (save, load, check), the token lists it
offers the judge, what the agent sees of it, and how the views label it. A new method is one module
with a `MethodSpec` subclass and one line in `registry/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from logitdiff.core.cell import Cell
from logitdiff.methods.logitdiff import ORDERINGS
from logitdiff.results.store import ResultsStore

if TYPE_CHECKING:
    from logitdiff.agent.views import AgentView
    from logitdiff.engine.models import ModelPair
    from logitdiff.engine.requests import Request

Tokens = dict[str, list[tuple[str, float]]]  # list id -> [(decoded token, weight)] in the method's order
GRADED_TOKENS = 20  # the length of every graded list (the reference's experiments grade 20)


@dataclass(frozen=True)
class RunChoice:
    """What the run's options choose among the methods' readouts and their options."""

    adl_readouts: tuple[str, ...] = ("lens",)  # --adl-readout
    orderings: tuple[str, ...] = ORDERINGS  # --orderings
    nmf_topics: int = 3
    nmf_mode: str = "logit_diff_magnitude"
    nmf_orthogonality: float = 0.0


class MethodSpec(ABC):
    method: ClassVar[str]  # Cell.method
    readout: ClassVar[str]  # Cell.readout (core.cell.DEFAULT_READOUT for a method read out one way)
    label: ClassVar[str]  # how records, plots and summaries key it: Cell.method_label
    display: ClassVar[str]  # how a person reads it in plots and tables
    # True: every graded list is a point of the relevance plots (ADL: each position); False: only the main ordering.
    every_list_a_point: ClassVar[bool]
    chooses_scale: ClassVar[bool] = False  # the judge picks the readout's scale per list before grading
    readout_in_records: ClassVar[bool]  # records name the readout (ADL's lens/patchscope, NMF) or leave it empty
    points: ClassVar[str]  # what one point of its relevance line is, as plot notes and tables say it

    @abstractmethod
    def selected(self, choice: RunChoice) -> bool:
        """Whether a run with these options computes this method (and readout) where its experiment lists the method."""

    def cell_options(self, choice: RunChoice) -> tuple[tuple[str, str | int | float], ...]:
        """The options of this readout a cell carries (they change its result, so its folder names them)."""
        return ()

    @abstractmethod
    def folder(self, cell: Cell) -> str:
        """The result's folder under the cell's pass folder: every parameter its result depends on."""

    @abstractmethod
    def key(self, cell: Cell) -> tuple[object, ...]:
        """The parameters its stored result depends on besides the pass (two cells with equal keys share one result)."""

    @abstractmethod
    def result_file(self, store: ResultsStore, cell: Cell) -> Path:
        """The file whose presence means the cell's method result is complete (written last)."""

    @abstractmethod
    def check_cell(self, cell: Cell, vocab: int | None, model: str) -> None:
        """Raise UserError, before anything loads, for a cell the method cannot compute."""

    @abstractmethod
    def requests(self, cell: Cell) -> list[Request]:
        """What the engine pass must accumulate for the cell (equal requests of several cells are filled once)."""

    @abstractmethod
    def save(self, store: ResultsStore, cell: Cell, results: Mapping[Request, object], pair: ModelPair) -> None:
        """Turn the pass's results into the cell's stored files (the result file last)."""

    @abstractmethod
    def check_stored(self, store: ResultsStore, cell: Cell, first_position: int) -> None:
        """Raise ValueError unless every stored file of the cell loads and has the cell's shape."""

    @abstractmethod
    def list_count(self, cell: Cell) -> int:
        """How many token lists one cell offers for grading."""

    @abstractmethod
    def tokens(self, store: ResultsStore, cell: Cell, judge_id: str) -> Tokens:
        """The graded lists (top 20 each) from the stored result."""

    @abstractmethod
    def agent_view(self, store: ResultsStore, cell: Cell, judge_id: str) -> AgentView:
        """What the interpretability agent is shown of the stored result."""
