"""Run an experiment grid: passes, relevance grading, agent evaluation, plots — skipping finished work.

Cells that share (model, organism, variant, corpus, seed) are filled by one engine pass. Every stage
writes through the results store; a cell whose stored result is missing or unreadable is (re)done,
the others are reused. A failing cell is recorded with its reason and the rest go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from logitdiff.config.loader import Registry
from logitdiff.experiments.grid import Cell, array_units, task_for_id
from logitdiff.experiments.hub_preflight import check_hub_access, hub_needs
from logitdiff.experiments.judge_choice import resolve_judge_id
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.experiments.validate import validated_cells
from logitdiff.results.store import ResultsStore

console = Console(stderr=True)


@dataclass
class RunSummary:
    computed: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    graded: int = 0
    grades_reused: int = 0
    unlabelled: int = 0  # graded lists failed because the judge left most labels UNKNOWN
    agent_runs: int = 0
    agent_reused: int = 0
    llm_usage: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    report_folder: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def print(self) -> None:
        table = Table(title="logitdiff run summary", show_header=False)
        table.add_row("cells computed", str(self.computed))
        table.add_row("cells reused", str(self.reused))
        table.add_row("cells graded / reused", f"{self.graded} / {self.grades_reused}")
        table.add_row("agent runs done / reused", f"{self.agent_runs} / {self.agent_reused}")
        table.add_row("lists the judge could not label", str(self.unlabelled))
        table.add_row("failed", str(len(self.failed)))
        table.add_row("time", f"{time.perf_counter() - self.started:.1f} s")
        for line in self.llm_usage:
            table.add_row("LLM", escape(line))
        console.print(table)
        for line in self.failed:
            console.print(f"[red]failed[/] {escape(line)}")  # lines hold '[pass]', '[relevance …]': not markup
        if self.missing:
            console.print(f"[yellow]{len(self.missing)} results missing from the plots[/] (see missing.json), e.g. {escape(self.missing[0])}")
        if self.report_folder:
            console.print(f"plots and summaries: [bold]{escape(self.report_folder)}[/]")


def _select(settings: RunSettings, cells: list[Cell]) -> tuple[list[Cell], bool]:
    """(cells to compute, whether to plot) for this invocation."""
    if settings.mode is Mode.plotting and not settings.array_job:
        return [], True
    if not settings.array_job:
        return cells, True
    units = array_units(cells, settings.array_unit)
    task = task_for_id(os.environ.get("SLURM_ARRAY_TASK_ID"), len(units))
    if task is None:
        return [], True
    return ([] if settings.mode is Mode.plotting else units[task]), False


def _groups(cells: Iterable[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[str, str, str, str, int], list[Cell]] = {}
    for c in cells:
        groups.setdefault(c.pass_key, []).append(c)
    return list(groups.values())


def _warn_shared_weights(reg: Registry, cells: Iterable[Cell]) -> None:
    """One warning per variant whose weights are another variant's (a config copy error): its numbers
    and plot points would be that other model's."""
    for organism, model, variant in dict.fromkeys((c.organism, c.model, c.variant) for c in cells):
        twins = reg.same_weights(organism, model, variant)
        if twins:
            source = reg.finetuned(organism, model, variant).source
            console.print(
                f"[yellow]warning:[/] {organism}/{model} variant {variant!r} loads the same weights as "
                f"{', '.join(repr(t) for t in twins)} ({source}): its results are that model's, not a separate {variant} finetune"
            )


def run_experiment(reg: Registry, settings: RunSettings) -> RunSummary:
    exp = reg.experiment(settings.experiment)
    cells = validated_cells(reg, settings)
    _warn_shared_weights(reg, cells)
    store = ResultsStore(settings.results_dir, drop_bos=settings.drop_bos)
    todo, plot = _select(settings, cells)
    if todo:
        needs = hub_needs(reg, store, todo, resolve_judge_id(settings.judge), overwrite=settings.overwrite, with_agent=settings.mode is Mode.full)
        check_hub_access(needs)
    # torch and transformers load only after the hub check, so a doomed run ends in seconds.
    from logitdiff.experiments.preflight import check_run_inputs
    from logitdiff.experiments.stages import Stages
    from logitdiff.report.build import build_report
    from logitdiff.report.collect import blackbox_cells

    check_run_inputs(settings, todo, plot)
    summary = RunSummary()
    stages = Stages(reg, settings, store, summary, blackbox=frozenset(blackbox_cells(cells)))
    if todo:
        stages.prepare(with_agent=settings.mode is Mode.full)
        console.print(f"[bold]{exp.cli_name}[/]: {len(todo)} of {len(cells)} cells, judge {escape(stages.judge_id)}")
        for group in _groups(todo):
            stages.run_group(group)
        stages.close()
    if plot:
        report = build_report(
            cells,
            store,
            settings.output_dir,
            stages.judge_id,
            stages.judge_label,
            agent=stages.agent if settings.mode is Mode.full or store.has_agent_results(cells, stages.agent) else None,
            agent_runs=settings.agent_runs,
        )
        summary.missing = report.missing
        summary.report_folder = str(report.folder)
    summary.print()
    return summary

