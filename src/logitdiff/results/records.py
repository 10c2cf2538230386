"""Stored result documents that more than one module reads (runner writes, report/status read)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from logitdiff.experiments.grid import Cell
from logitdiff.judge.relevance import GradedList


class RelevanceResult(BaseModel):
    """All graded lists of one cell by one judge (LogitDiff orderings, or ADL positions 0–4)."""

    judge: str
    judge_is_offline: bool
    cell: Cell
    lists: list[GradedList]


class CellFailure(BaseModel):
    cell: Cell
    stage: Literal["pass", "relevance", "agent"]
    reason: str
