"""Stored result documents that more than one module reads (runner writes, report/status read)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from logitdiff.core.atomic import read_json
from logitdiff.core.cell import Cell
from logitdiff.results.graded import GradedList
from logitdiff.results.store import ResultsStore


class RelevanceResult(BaseModel):
    """All graded lists of one cell by one judge (LogitDiff orderings, or ADL positions 0–4)."""

    judge: str
    judge_is_offline: bool
    cell: Cell
    lists: list[GradedList]
    control_organism: str | None = None  # whose description every list was also graded against


class CellFailure(BaseModel):
    cell: Cell
    stage: Literal["pass", "relevance", "agent"]
    reason: str


def failure_reason(store: ResultsStore, cell: Cell) -> str:
    """'stage: reason' from the cell's FAILED.json; a corrupted one says so instead of raising."""
    path = store.failure(cell)
    try:
        doc = CellFailure.model_validate(read_json(path))
    except ValueError as exc:  # also pydantic's ValidationError
        return f"unreadable {path.name} ({str(exc).splitlines()[0]})"
    return f"{doc.stage}: {doc.reason}"


def relevance_problem(store: ResultsStore, cell: Cell, judge_id: str, control_organism: str | None = None) -> str | None:
    """Why the cell's stored grades by `judge_id` cannot be used (missing, unreadable, a failed list, or,
    with `control_organism`, graded without the control against that organism), or None."""
    path = store.relevance(cell, judge_id)
    if not path.is_file():
        return f"no relevance by {judge_id}"
    try:
        res = RelevanceResult.model_validate(read_json(path))
    except ValueError as exc:
        return f"unreadable relevance result ({str(exc).splitlines()[0]})"
    failed = [f"{lst.list_id}: {lst.failed}" for lst in res.lists if lst.failed]
    if failed:
        return f"grading failed ({'; '.join(failed)})"
    if control_organism is not None and res.control_organism != control_organism:
        return f"no negative control against {control_organism}"
    return None


def failed_lists(store: ResultsStore, cell: Cell, judge_id: str) -> set[str]:
    """Ids of the lists whose stored grading by `judge_id` failed (none when there is no readable result):
    their cached judge answers must not be served again."""
    path = store.relevance(cell, judge_id)
    try:
        res = RelevanceResult.model_validate(read_json(path))
    except ValueError:  # missing or unreadable: nothing is known to have failed
        return set()
    return {lst.list_id for lst in res.lists if lst.failed}
