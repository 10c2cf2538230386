"""Stored result documents that more than one module reads (runner writes, report/status read)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from logitdiff.config.schema import Method
from logitdiff.experiments.grid import Cell

Label = Literal["RELEVANT", "IRRELEVANT", "UNKNOWN"]


class GradedToken(BaseModel):
    token: str
    weight: float
    label: Label


class GradedListRecord(BaseModel):
    """One graded candidate list: a LogitDiff ordering, or one ADL position."""

    list_id: str
    method: Method
    ordering: str | None = None  # LogitDiff ordering name
    position: int | None = None  # ADL position
    tokens: list[GradedToken]
    percentage: float | None
    weighted_percentage: float | None
    trivial_percentage: float | None
    failed: str | None = None
    rotations: list[int] = []
    raw_responses: list[str] = []


class RelevanceResult(BaseModel):
    judge: str
    judge_is_offline: bool
    cell: Cell
    lists: list[GradedListRecord]


class CellFailure(BaseModel):
    cell: Cell
    stage: Literal["pass", "relevance", "agent"]
    reason: str
