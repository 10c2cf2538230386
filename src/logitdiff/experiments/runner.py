"""Run an experiment grid: passes, relevance grading, agent evaluation, plots — skipping finished work.

Cells are filled by the fewest engine passes (`grid.pass_groups`: one per (base model, corpus, seed),
whatever the organisms); several experiments run together (`run_study`) share them. Plots and
summaries stay per experiment and organism. Every stage
writes through the results store; a cell whose stored result is missing or unreadable is (re)done,
the others are reused. A failing cell is recorded with its reason and the rest go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape

from logitdiff.config.loader import Registry
from logitdiff.core.cell import Cell
from logitdiff.experiments.folders import check_writable_dir
from logitdiff.experiments.grid import array_units, blackbox_cells, pass_groups, plan_cells, planned_blackbox, task_for_id
from logitdiff.experiments.hub_preflight import check_hub_access, hub_needs
from logitdiff.experiments.judge_choice import resolve_judge_id
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.experiments.summary import RunSummary
from logitdiff.experiments.validate import validated_cells
from logitdiff.registry import results_store

console = Console(stderr=True)


def _select(reg: Registry, settings: RunSettings, cells: list[Cell]) -> tuple[list[Cell], bool]:
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


def _per_organism(cells: list[Cell]) -> list[list[Cell]]:
    """A grid's cells split by organism: each organism gets its own plots and summaries."""
    parts: dict[str, list[Cell]] = {}
    for c in cells:
        parts.setdefault(c.organism, []).append(c)
    return list(parts.values())


def run_experiment(reg: Registry, settings: RunSettings) -> RunSummary:
    exp = reg.experiment(settings.experiment)
    cells = validated_cells(reg, settings)
    todo, plot = _select(reg, settings, cells)
    return _run(reg, settings, [cells], todo, plot, f"{exp.cli_name}: {len(todo)} of {len(cells)} cells")


def run_study(reg: Registry, settings: list[RunSettings]) -> RunSummary:
    """Several experiments at once (same model, organisms, seeds and run options): their cells are planned
    into the fewest passes, each stored result computed once; then each experiment's plots, as usual."""
    grids = [validated_cells(reg, s) for s in settings]
    plotting = settings[0].mode is Mode.plotting
    todo = [] if plotting else plan_cells(grids)
    names = ", ".join(reg.experiment(s.experiment).cli_name for s in settings)
    return _run(reg, settings[0], grids, todo, True, f"study ({names}): {len(todo)} distinct of {sum(map(len, grids))} cells")


def _run(reg: Registry, settings: RunSettings, grids: list[list[Cell]], todo: list[Cell], plot: bool, headline: str) -> RunSummary:
    _warn_shared_weights(reg, [c for cells in grids for c in cells])
    # The store keeps corpus digests in the cache from its first lookup on, plotting included.
    check_writable_dir(settings.cache_dir, "--cache-dir (or $LOGITDIFF_CACHE)")
    store = results_store(settings.results_dir, cache_dir=settings.cache_dir)
    if todo:
        needs = hub_needs(reg, store, todo, resolve_judge_id(settings.judge), overwrite=settings.overwrite, with_agent=settings.mode is Mode.full)
        check_hub_access(needs)
    # torch and transformers load only after the hub check, so a doomed run ends in seconds.
    from logitdiff.experiments.cost import ControlLookup, planned_requests
    from logitdiff.experiments.preflight import check_run_inputs, remove_debris
    from logitdiff.experiments.stages import Stages
    from logitdiff.judge.llm_judge import LLMJudge
    from logitdiff.report.build import build_report

    check_run_inputs(settings, todo, plot)
    if todo:
        remove_debris(settings)
    summary = RunSummary()
    blackbox = planned_blackbox(grids, todo)
    run_organisms = tuple(dict.fromkeys(c.organism for cells in grids for c in cells))
    stages = Stages(reg, settings, store, summary, blackbox=blackbox, run_organisms=run_organisms)
    if todo:
        stages.prepare(with_agent=settings.mode is Mode.full)
        n_passes = len(pass_groups(todo))
        console.print(f"[bold]{escape(headline)}[/], {n_passes} pass{'es' if n_passes != 1 else ''}, judge {escape(stages.judge_id)}")
        llm_judge = stages.judge if isinstance(stages.judge, LLMJudge) else None
        plan = planned_requests(reg, settings, store, todo, judge=llm_judge, frequent=stages.frequent_tokens, blackbox=blackbox,
                                control=ControlLookup(stages.control_name, stages.control))
        console.print(escape(plan.line()), soft_wrap=True)
        for group in pass_groups(todo):
            stages.run_group(group)
        stages.close()
    if plot:
        for cells in (part for grid in grids for part in _per_organism(grid)):
            report = build_report(
                cells,
                store,
                settings.output_dir,
                stages.judge_id,
                stages.judge_label,
                agent=stages.agent if settings.mode is Mode.full or store.has_agent_results(cells, stages.agent) else None,
                agent_runs=settings.agent_runs,
                blackbox=blackbox_cells(cells),
            )
            summary.missing += report.missing
            summary.report_folders.append(str(report.folder))
    summary.print()
    return summary

