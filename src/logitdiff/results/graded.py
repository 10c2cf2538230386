"""The graded token lists of one cell (SPEC §5): what the judge is given and what it returns, as stored.

The judge (`judge.relevance`) fills these; the results store keeps them; the report reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Label = Literal["RELEVANT", "IRRELEVANT", "UNKNOWN"]
Agreement = Literal["all", "majority"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Candidate(_Record):
    token: str
    weight: float


class CandidateList(_Record):
    """One list to grade, e.g. 'top_k_occurring' or 'adl_pos2'; candidates in the method's order."""

    list_id: str
    candidates: list[Candidate]


class OrderingResult(_Record):
    rotation: int  # cyclic rotation: shown position p holds candidate (p + rotation) % n
    order: list[int]
    labels: list[Label]  # mapped back to the candidates' original order
    responses: list[str]  # every reply of the judge for this ordering, in the order they were asked for
    used_response: int = 0  # the reply the labels come from


class RelevanceMetrics(_Record):
    """Percentages are in 0..100; UNKNOWN counts as not relevant. trivial_percentage is None when the
    finetune's training data could not be read (trivial_unavailable says why). control_percentage is
    the same list's percentage graded against another organism's description (`control_organism`):
    the share the judge would also have given to an unrelated finetune; None without a control."""

    percentage: float
    weighted_percentage: float
    trivial_percentage: float | None
    n_candidates: int
    n_relevant: int
    n_unknown: int
    trivial_unavailable: str | None = None
    control_percentage: float | None = None
    control_organism: str | None = None


class ControlGrades(_Record):
    """The negative control of one list: the same candidates graded against `organism`'s description."""

    organism: str
    labels: list[Label]
    orderings: list[OrderingResult]
    failed: str | None = None


class GradedList(_Record):
    list_id: str
    judge_id: str
    agreement: Agreement
    candidates: list[Candidate]
    labels: list[Label]
    orderings: list[OrderingResult]
    metrics: RelevanceMetrics | None
    failed: str | None = None
    control: ControlGrades | None = None
