"""The method registry: one `MethodSpec` per method and readout; every layer above dispatches through it.

To add a method: a module with its spec (registry/spec.py says what a spec provides) and one entry
in REGISTERED below.
"""

from __future__ import annotations

from pathlib import Path

from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.methods.logitdiff import ORDERINGS
from logitdiff.registry.adl import AdlLensSpec, AdlPatchscopeSpec, AdlSpec
from logitdiff.registry.logitdiff import LogitDiffSpec
from logitdiff.registry.nmf import ORDERING as NMF_ORDERING
from logitdiff.registry.nmf import NmfSpec
from logitdiff.registry.spec import MethodSpec, RunChoice, Tokens
from logitdiff.results.method_io import load_pass_record
from logitdiff.results.store import ResultsStore

REGISTERED: tuple[MethodSpec, ...] = (LogitDiffSpec(), NmfSpec(), AdlLensSpec(), AdlPatchscopeSpec())
_BY_LABEL = {s.label: s for s in REGISTERED}
_BY_CELL = {(s.method, s.readout): s for s in REGISTERED}
METHODS: tuple[str, ...] = tuple(dict.fromkeys(s.method for s in REGISTERED))
# --adl-readout: one readout of ADL, or 'both'
ADL_READOUTS: tuple[str, ...] = tuple(s.readout for s in REGISTERED if isinstance(s, AdlSpec))
READOUT_CHOICES: dict[str, tuple[str, ...]] = {**{r: (r,) for r in ADL_READOUTS}, "both": ADL_READOUTS}
ORDERING_CHOICES: tuple[str, ...] = (*ORDERINGS, NMF_ORDERING)  # --orderings

__all__ = ["METHODS", "ORDERING_CHOICES", "READOUT_CHOICES", "REGISTERED", "RunChoice", "MethodSpec", "Tokens", "check_method_result", "method_result", "method_tokens", "readout_column", "result_key", "results_store",
           "spec_named", "spec_of", "specs_for"]


def spec_of(cell: Cell) -> MethodSpec:
    return _BY_CELL[(cell.method, cell.readout)]


def spec_named(label: str) -> MethodSpec:
    """The spec of a label as records and plots key it ('logitdiff', 'adl', 'adl-patchscope')."""
    return _BY_LABEL[label]


def specs_for(method: str, choice: RunChoice) -> list[MethodSpec]:
    """The specs of `method` (with their readouts) that a run with these options computes."""
    mine = [s for s in REGISTERED if s.method == method]
    if not mine:
        raise UserError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return [s for s in mine if s.selected(choice)]


def result_key(cell: Cell) -> tuple[object, ...]:
    """Everything a cell's stored result depends on (not which experiment asked for it)."""
    spec = spec_of(cell)
    key = (*cell.pass_key, spec.label, *spec.key(cell))
    return (*key, "nobos") if cell.drop_bos else key


def results_store(root: Path, cache_dir: Path | None = None) -> ResultsStore:
    """The store of results under `root`, with the methods' folders."""
    return ResultsStore(root, cache_dir=cache_dir, method_folder=lambda cell: spec_of(cell).folder(cell))


def method_result(store: ResultsStore, cell: Cell) -> Path:
    """The file whose presence means the cell's method result is complete."""
    return spec_of(cell).result_file(store, cell)


def check_method_result(store: ResultsStore, cell: Cell) -> None:
    """Raise ValueError unless every stored file of the cell loads, has the cell's shape, and its pass
    record is the cell's."""
    record = load_pass_record(store, cell)
    spec_of(cell).check_stored(store, cell, record.first_counted_position)


def method_tokens(store: ResultsStore, cell: Cell, judge_id: str) -> Tokens:
    """list id -> [(decoded token, weight)] in the method's order, 20 long."""
    return spec_of(cell).tokens(store, cell, judge_id)


def readout_column(cell: Cell) -> str | None:
    """What records name as the cell's readout: the readout of a method that has several, else None."""
    return cell.readout if spec_of(cell).readout_in_records else None
