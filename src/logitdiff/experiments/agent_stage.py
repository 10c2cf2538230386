"""Mode full: run the interpretability agent on each cell's method output, and the blackbox baseline."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from logitdiff.agent.evaluate import evaluate_agent
from logitdiff.agent.prompts import adl_overview, logitdiff_overview
from logitdiff.agent.records import AgentRunRecord
from logitdiff.experiments.candidates import list_position, method_tokens
from logitdiff.experiments.grid import Cell
from logitdiff.results.atomic import read_json, write_json

if TYPE_CHECKING:
    from logitdiff.experiments.stages import Stages


def overview_for(stages: Stages, cell: Cell) -> str:
    tokens = method_tokens(stages.store, cell, stages.judge_id)
    if cell.method == "logitdiff":
        return logitdiff_overview(tokens["top_k_occurring"])
    return adl_overview({list_position(list_id): toks for list_id, toks in tokens.items()}, readout=cell.readout)  # type: ignore[misc]


def _done(path: Path) -> bool:
    """A stored run counts when it finished and every grader run produced a score."""
    if not path.is_file():
        return False
    try:
        record = AgentRunRecord.model_validate(read_json(path))
    except ValueError:
        return False
    return record.failed is None and bool(record.grades) and all(g.score is not None for g in record.grades)


def _run(stages: Stages, cell: Cell, overview: str | None, paths: list[Path]) -> None:
    s = stages.settings
    # A recomputed method result makes its agent runs stale; the blackbox never sees method output.
    stale = overview is not None and cell in stages.fresh
    todo = [p for p in paths if s.overwrite or stale or not _done(p)]
    stages.summary.agent_reused += len(paths) - len(todo)
    if not todo:
        return
    model_cfg, _, organism = stages.configs(cell)
    records = asyncio.run(
        evaluate_agent(
            pair=stages.pair(cell),
            model_cfg=model_cfg,
            organism=organism,
            overview=overview,
            agent_llm=stages.agent_llm,
            grader_llm=stages.grader_llm,
            seed=cell.seed,
            budget=s.agent_budget,
            runs=s.agent_runs,
            grader_runs=s.grader_runs,
            max_new_tokens=s.agent_max_new_tokens,
        )
    )
    for path, record in zip(paths, records, strict=True):
        if path in todo:
            write_json(path, record.model_dump())
            if record.failed:
                stages.summary.failed.append(f"{cell.label()} [agent run {record.run}{' blackbox' if overview is None else ''}]: {record.failed}")
            else:
                stages.summary.agent_runs += 1


def run_agent_stage(stages: Stages, cells: list[Cell]) -> None:
    runs = range(stages.settings.agent_runs)
    assert stages.agent is not None
    for cell in cells:
        paths = [stages.store.agent_run(cell, stages.agent, r) for r in runs]
        _run(stages, cell, overview_for(stages, cell), paths)
        if cell in stages.blackbox:
            paths = [stages.store.blackbox_run(cell, stages.agent, r) for r in runs]
            _run(stages, cell, None, paths)
