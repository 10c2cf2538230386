"""What a run will ask of the LLMs before it runs: judge, agent and grader requests after the cache.

Judge requests are counted exactly where a cell's lists are stored: the first try of each ordering is
looked up in the response cache under the key the run will use (request and sample identity). Lists not
computed yet count in full. Agent and grader requests depend on what the agent writes, so agent runs
are counted (each sends one request per turn, up to its call cap) and grader requests are the first
tries of their runs. Retries of answers in the wrong format come on top of every count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logitdiff.config.loader import Registry
from logitdiff.core.cell import Cell
from logitdiff.experiments.control import control_organism
from logitdiff.experiments.grid import plan_cells, planned_blackbox
from logitdiff.experiments.judge_choice import resolve_judge_id
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.judge.factory import make_judge
from logitdiff.judge.frequent_tokens import FrequentTokens
from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.offline import OFFLINE_JUDGE_ID
from logitdiff.judge.relevance import ROTATIONS, ControlTarget, shown_order
from logitdiff.llm.spec import parse_llm_id
from logitdiff.registry import method_result, results_store, spec_of
from logitdiff.registry.adl import scale_choice_path
from logitdiff.results.records import relevance_problem
from logitdiff.results.store import AgentKey, ResultsStore


@dataclass(frozen=True)
class PlannedRequests:
    judge: int  # first tries of judge orderings and patchscope scale choices that the cache cannot answer
    agent_runs: int | None = None  # agent runs to do (method and blackbox); None: the mode runs no agent
    grader: int = 0  # first tries of the grader runs of those agent runs

    def line(self) -> str:
        text = f"LLM requests this run will send after the cache: judge {self.judge}"
        if self.agent_runs is not None:
            text += f", agent {self.agent_runs} run(s) (one request per turn), grader {self.grader}"
        return text + "; answers in the wrong format are asked again"


FrequentFor = Callable[[Cell], FrequentTokens]
ControlNameFor = Callable[[Cell], str | None]
ControlFor = Callable[[Cell], ControlTarget | None]


@dataclass(frozen=True)
class ControlLookup:
    """The run's negative control of a cell: its organism's name (cheap), and the target with that
    organism's frequent tokens (needs a tokenizer: asked only for lists already stored)."""

    name: ControlNameFor
    target: ControlFor


NO_CONTROL = ControlLookup(lambda cell: None, lambda cell: None)


def planned_requests(reg: Registry, settings: RunSettings, store: ResultsStore, cells: Sequence[Cell], *,
                     judge: LLMJudge | None, frequent: FrequentFor, blackbox: Collection[Cell] = (),
                     control: ControlLookup = NO_CONTROL) -> PlannedRequests:
    """The requests the run of `cells` will send; `judge` None for the offline judge (no requests),
    `frequent` the run's frequent training tokens of a cell's finetune, `control` its negative control
    (every list is graded against it too)."""
    judge_requests = 0
    if judge is not None and settings.mode is not Mode.plotting:
        judge_requests = sum(_judge_requests(reg, settings, store, cell, judge, frequent, control) for cell in cells)
    if settings.mode is not Mode.full:
        return PlannedRequests(judge_requests)
    agent = AgentKey(parse_llm_id(settings.agent_llm).id, parse_llm_id(settings.grader_llm).id, settings.agent_budget)
    runs = 0
    for cell in cells:
        stale = settings.overwrite or not _method_stored(store, cell)
        runs += sum(stale or not _run_stored(store.agent_run(cell, agent, r)) for r in range(settings.agent_runs))
        if cell in blackbox:
            runs += sum(settings.overwrite or not _run_stored(store.blackbox_run(cell, agent, r)) for r in range(settings.agent_runs))
    return PlannedRequests(judge_requests, runs, runs * settings.grader_runs)


def _run_stored(path: Path) -> bool:
    if not path.is_file():
        return False
    from logitdiff.experiments.agent_stage import run_done  # the agent modules load torch: only for stored runs

    return run_done(path)


def _method_stored(store: ResultsStore, cell: Cell) -> bool:
    return method_result(store, cell).is_file()


def _judge_requests(reg: Registry, settings: RunSettings, store: ResultsStore, cell: Cell, judge: LLMJudge,
                    frequent: FrequentFor, control: ControlLookup) -> int:
    judge_id = judge.id
    stored = _method_stored(store, cell)
    control_name = control.name(cell)
    if stored and not settings.overwrite and relevance_problem(store, cell, judge_id, control_name) is None:
        return 0  # graded before: reused without asking
    # torch loads with the method modules: only when there is something to grade.
    from logitdiff.experiments.candidates import candidate_lists, judge_samples
    spec = spec_of(cell)
    n_lists = spec.list_count(cell)
    scale_choices = 0
    if spec.chooses_scale:
        if settings.overwrite or not stored or not scale_choice_path(store, cell, judge_id).is_file():
            scale_choices = n_lists * _scale_choice_requests()
    graders = 1 + (control_name is not None)  # the organism's own description, and the control's
    if not stored or scale_choices:
        return scale_choices + n_lists * len(ROTATIONS) * graders
    try:
        lists = candidate_lists(store, cell, judge_id)
    except (ValueError, KeyError, StopIteration):  # an unreadable result is recomputed: every list is asked
        return n_lists * len(ROTATIONS) * graders
    organism = reg.organism(cell.organism)
    tokens_frequent = frequent(cell).tokens
    unanswered = 0
    for lst, sample in zip(lists, judge_samples(store, cell, judge_id, lists), strict=True):
        tokens = [c.token for c in lst.candidates]
        unanswered += sum(
            sample.refresh or not judge.first_request_cached(organism, tokens_frequent, shown_order(tokens, r), sample.ordering(lst.list_id, r))
            for r in ROTATIONS
        )
        if (target := control.target(cell)) is not None:
            control_list = f"{lst.list_id}|control:{target.organism.name}"
            unanswered += sum(
                sample.refresh or not judge.first_request_cached(target.organism, target.frequent, shown_order(tokens, r), sample.ordering(control_list, r))
                for r in ROTATIONS
            )
    return unanswered


def _scale_choice_requests() -> int:
    """First tries of one position's scale choice: one per group of scales, then a final over the winners."""
    from logitdiff.judge.scale_choice import GROUP_SIZE
    from logitdiff.methods.patchscope import SCALES

    groups = math.ceil(len(SCALES) / GROUP_SIZE)
    return groups + (groups > 1)


def check_plan(reg: Registry, settings: RunSettings, grids: Sequence[Sequence[Cell]]) -> PlannedRequests:
    """The plan for `--check` of one experiment's cells or several (a study), with the run's judge and
    frequent tokens, built without contacting any server."""
    cells = plan_cells(grids)
    blackbox = planned_blackbox(grids, cells)
    store = results_store(settings.results_dir, cache_dir=settings.cache_dir)
    judge = None
    if resolve_judge_id(settings.judge) != OFFLINE_JUDGE_ID:
        built = make_judge(settings.judge, settings.llm_cache(), timeout_s=settings.llm_timeout_s, retries=settings.llm_retries)
        judge = built if isinstance(built, LLMJudge) else None
    run_organisms = tuple(dict.fromkeys(c.organism for cells in grids for c in cells))
    loaded: dict[str, Any] = {}

    def stages() -> Any:
        if not loaded:
            # The run's own lookups (tokenizer and cached counts); they need torch, so only for stored lists.
            from logitdiff.experiments.stages import Stages
            from logitdiff.experiments.summary import RunSummary

            loaded["run"] = Stages(reg, settings, store, RunSummary(), run_organisms=run_organisms)
        return loaded["run"]

    def control_name(cell: Cell) -> str | None:
        return control_organism(reg, cell.organism, cell.model, run_organisms)

    return planned_requests(reg, settings, store, cells, judge=judge, frequent=lambda cell: stages().frequent_tokens(cell),
                            blackbox=blackbox, control=ControlLookup(control_name, lambda cell: stages().control(cell)))
