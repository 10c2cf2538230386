"""`logitdiff status`: what is stored for each cell of a grid, in array order."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from logitdiff.core.cell import Cell
from logitdiff.registry import check_method_result, method_result, results_store
from logitdiff.results.records import failure_reason, relevance_problem
from logitdiff.results.store import ResultsStore


def cell_state(store: ResultsStore, cell: Cell, judge_id: str) -> tuple[str, str]:
    """('done' | 'graded-missing' | 'corrupt' | 'missing' | 'failed', detail), judged by the same checks
    the runner applies before it reuses a result; a FAILED.json beside a usable result is stale."""
    try:
        check_method_result(store, cell)
    except ValueError as exc:
        if store.failure(cell).is_file():
            return "failed", failure_reason(store, cell)
        if not method_result(store, cell).is_file():
            return "missing", ""
        return "corrupt", f"{str(exc).splitlines()[0]} (a rerun redoes it)"
    problem = relevance_problem(store, cell, judge_id)
    return ("graded-missing", problem) if problem else ("done", "")


def print_status(cells: list[Cell], results_dir: Path, judge: str | None) -> None:
    from logitdiff.experiments.judge_choice import resolve_judge_id

    judge_id = resolve_judge_id(judge)
    store = results_store(results_dir)
    table = Table(title=f"{cells[0].experiment} · {cells[0].model} · {cells[0].organism} · judge {judge_id}")
    for col in ("task", "seed", cells[0].swept, "method", "state", "detail"):
        table.add_column(col)
    counts: dict[str, int] = {}
    for cell in cells:
        state, detail = cell_state(store, cell, judge_id)
        counts[state] = counts.get(state, 0) + 1
        style = {"done": "green", "failed": "red", "corrupt": "red", "missing": "yellow"}.get(state, "cyan")
        table.add_row(str(cell.index), str(cell.seed), str(cell.value), cell.method_label, f"[{style}]{state}[/]", escape(detail))
    console = Console()
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
