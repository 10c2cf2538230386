"""Read stored results for a grid into tidy pandas DataFrames (one row per graded list / agent run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from logitdiff.agent.records import AgentRunRecord
from logitdiff.core.atomic import read_json
from logitdiff.core.cell import Cell
from logitdiff.registry import readout_column
from logitdiff.report.bands import BLACKBOX
from logitdiff.results.list_ids import list_position
from logitdiff.results.records import RelevanceResult, failure_reason
from logitdiff.results.store import AgentKey, ResultsStore


@dataclass
class Collected:
    relevance: pd.DataFrame
    agent: pd.DataFrame
    missing: list[str] = field(default_factory=list)


def _relevance_rows(res: RelevanceResult, cell: Cell) -> list[dict[str, object]]:
    rows = []
    for lst in res.lists:
        position = list_position(lst.list_id)
        metrics = None if lst.failed else lst.metrics  # a failed list has no percentage, not 0 %
        labels = lst.labels or ["UNKNOWN"] * len(lst.candidates)
        control_labels: list[str | None] = list(lst.control.labels) if lst.control and lst.control.labels else [None] * len(lst.candidates)
        rows.append(
            {
                "experiment": cell.experiment,
                "model": cell.model,
                "organism": cell.organism,
                "variant": cell.variant,
                "corpus": cell.corpus,
                "method": cell.method,
                "readout": readout_column(cell),
                "ordering": None if position is not None else lst.list_id,
                "position": position,
                "parameter": cell.swept,
                "value": cell.value,
                "seed": cell.seed,
                "S": cell.samples,
                "T": cell.positions,
                "K": cell.top_k,
                "judge": res.judge,
                "percentage": metrics.percentage if metrics else None,
                "weighted_percentage": metrics.weighted_percentage if metrics else None,
                "trivial_percentage": metrics.trivial_percentage if metrics else None,
                # The negative control: the same list graded against another organism's description.
                "control_percentage": metrics.control_percentage if metrics else None,
                "control_organism": lst.control.organism if lst.control else None,
                "n_unknown": labels.count("UNKNOWN"),
                "trivial_unavailable": metrics.trivial_unavailable if metrics else None,
                "failed": lst.failed,
                "tokens": [{"token": c.token, "weight": c.weight, "label": label, "control_label": control}
                           for c, label, control in zip(lst.candidates, labels, control_labels, strict=True)],
            }
        )
    return rows


def _agent_rows(store: ResultsStore, cell: Cell, agent: AgentKey, runs: int, blackbox: bool) -> tuple[list[dict[str, object]], list[str]]:
    rows: list[dict[str, object]] = []
    missing: list[str] = []
    for run in range(runs):
        path = store.blackbox_run(cell, agent, run) if blackbox else store.agent_run(cell, agent, run)
        what = f"{cell.label()} {'blackbox' if blackbox else 'agent'} run {run}"
        if not path.is_file():
            missing.append(f"{what}: not computed")
            continue
        try:
            doc = AgentRunRecord.model_validate(read_json(path))
        except ValueError as exc:  # also pydantic's ValidationError: a truncated or foreign file
            missing.append(f"{what}: unreadable ({str(exc).splitlines()[0]})")
            continue
        if doc.failed:
            missing.append(f"{what}: failed ({doc.failed})")
            continue
        for grade in doc.grades:
            if grade.score is None:
                missing.append(f"{what}: grader run {grade.grader_run} failed ({grade.failed})")
                continue
            rows.append(
                {
                    "experiment": cell.experiment,
                    "model": cell.model,
                    "organism": cell.organism,
                    "variant": cell.variant,
                    "method": BLACKBOX if blackbox else cell.method,
                    "parameter": cell.swept,
                    "value": cell.value,
                    "seed": cell.seed,
                    "budget": agent.budget,
                    "run": run,
                    "grader_run": grade.grader_run,
                    "score": grade.score,
                    "agent": agent.agent_id,
                    "grader": agent.grader_id,
                }
            )
    return rows, missing


def collect(
    cells: list[Cell],
    store: ResultsStore,
    judge_id: str,
    *,
    agent: AgentKey | None = None,
    agent_runs: int = 0,  # runs per cell to read; only with `agent` (the run settings say how many)
    blackbox: Sequence[Cell] = (),
) -> Collected:
    rel_rows: list[dict[str, object]] = []
    missing: list[str] = []
    for cell in cells:
        path = store.relevance(cell, judge_id)
        if not path.is_file():
            reason = failure_reason(store, cell) if store.failure(cell).is_file() else "not computed"
            missing.append(f"{cell.label()}: relevance by {judge_id} missing ({reason})")
            continue
        try:
            res = RelevanceResult.model_validate(read_json(path))
        except ValueError as exc:
            missing.append(f"{cell.label()}: unreadable relevance result ({exc})")
            continue
        rel_rows.extend(_relevance_rows(res, cell))
        missing += [f"{cell.label()} [{lst.list_id}]: relevance by {judge_id} failed ({lst.failed})" for lst in res.lists if lst.failed]
    agent_rows: list[dict[str, object]] = []
    if agent is not None:
        for cell in cells:
            rows, miss = _agent_rows(store, cell, agent, agent_runs, blackbox=False)
            agent_rows += rows
            missing += miss
        for cell in blackbox:
            rows, miss = _agent_rows(store, cell, agent, agent_runs, blackbox=True)
            agent_rows += rows
            missing += miss
    relevance = pd.DataFrame(rel_rows)
    if len(relevance):  # an integer column with nulls (LogitDiff rows), so summaries write 3, not 3.0
        relevance["position"] = relevance["position"].astype("Int64")
    return Collected(relevance, pd.DataFrame(agent_rows), missing)
