"""Mode full: run the interpretability agent on each cell's method output, and the blackbox baseline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logitdiff.agent.evaluate import evaluate_agent
from logitdiff.agent.records import AgentRunRecord
from logitdiff.agent.views import AgentView, blackbox_view
from logitdiff.config.schema import ModelConfig, OrganismConfig
from logitdiff.core.atomic import read_json, write_json
from logitdiff.core.cell import Cell
from logitdiff.engine.models import ModelPair
from logitdiff.experiments.summary import RunSummary
from logitdiff.llm.client import LLMClient
from logitdiff.registry import spec_of
from logitdiff.results.store import AgentKey, ResultsStore


@dataclass(frozen=True)
class AgentSetup:
    """Everything the agent stage needs besides the cells: where results live, which LLMs, how many runs."""

    store: ResultsStore
    agent: AgentKey
    judge_id: str  # a patchscope cell is shown at the scales this judge chose
    agent_llm: LLMClient
    grader_llm: LLMClient
    runs: int
    grader_runs: int
    max_new_tokens: int
    overwrite: bool
    blackbox: frozenset[Cell]  # cells that also run the baseline without method output


@dataclass(frozen=True)
class AgentInputs:
    """What the run's other stages provide: the loaded models, configs, and which results are new."""

    pair: Callable[[Cell], ModelPair]
    configs: Callable[[Cell], tuple[ModelConfig, OrganismConfig]]
    fresh: set[Cell]  # cells whose method result was recomputed in this run: their agent runs are stale
    summary: RunSummary


def view_for(store: ResultsStore, cell: Cell, judge_id: str) -> AgentView:
    """What the agent sees of a cell's stored method output."""
    return spec_of(cell).agent_view(store, cell, judge_id)


def run_done(path: Path) -> bool:
    """A stored run counts when it finished with its FINAL's parts stored (runs without them followed
    another procedure and are redone) and every grader run produced a score."""
    if not path.is_file():
        return False
    try:
        record = AgentRunRecord.model_validate(read_json(path))
    except ValueError:
        return False
    return record.failed is None and record.final is not None and bool(record.grades) and all(g.score is not None for g in record.grades)


def _run(setup: AgentSetup, inputs: AgentInputs, cell: Cell, view: AgentView, paths: list[Path]) -> None:
    # A recomputed method result makes its agent runs stale; the blackbox never sees method output.
    stale = not view.blackbox and cell in inputs.fresh
    todo = [p for p in paths if setup.overwrite or stale or not run_done(p)]
    inputs.summary.agent_reused += len(paths) - len(todo)
    if not todo:
        return
    model_cfg, organism = inputs.configs(cell)
    records = asyncio.run(
        evaluate_agent(
            pair=inputs.pair(cell),
            model_cfg=model_cfg,
            organism=organism,
            view=view,
            agent_llm=setup.agent_llm,
            grader_llm=setup.grader_llm,
            seed=cell.seed,
            sample=setup.store.sample_id(paths[0].parent),
            budget=setup.agent.budget,
            runs=setup.runs,
            grader_runs=setup.grader_runs,
            max_new_tokens=setup.max_new_tokens,
        )
    )
    for path, record in zip(paths, records, strict=True):
        if path in todo:
            write_json(path, record.model_dump())
            if record.failed:
                inputs.summary.failed.append(f"{cell.label()} [agent run {record.run}{' blackbox' if view.blackbox else ''}]: {record.failed}")
            else:
                inputs.summary.agent_runs += 1


def run_agent_stage(setup: AgentSetup, inputs: AgentInputs, cells: list[Cell]) -> None:
    runs = range(setup.runs)
    for cell in cells:
        paths = [setup.store.agent_run(cell, setup.agent, r) for r in runs]
        _run(setup, inputs, cell, view_for(setup.store, cell, setup.judge_id), paths)
        if cell in setup.blackbox:
            paths = [setup.store.blackbox_run(cell, setup.agent, r) for r in runs]
            _run(setup, inputs, cell, blackbox_view(), paths)
