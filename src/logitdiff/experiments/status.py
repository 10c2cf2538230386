"""`logitdiff status`: what is stored for each cell of a grid, in array order."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from logitdiff.experiments.grid import Cell
from logitdiff.results.atomic import read_json
from logitdiff.results.store import ResultsStore


def cell_state(store: ResultsStore, cell: Cell, judge_id: str) -> tuple[str, str]:
    """('done' | 'graded-missing' | 'missing' | 'failed', detail)."""
    if store.failure(cell).is_file():
        try:
            doc = read_json(store.failure(cell))
            return "failed", f"{doc.get('stage', '?')}: {doc.get('reason', '?')}"
        except ValueError as exc:
            return "failed", str(exc)
    if not store.method_result(cell).is_file():
        return "missing", ""
    if not store.relevance(cell, judge_id).is_file():
        return "graded-missing", f"no relevance by {judge_id}"
    return "done", ""


def print_status(cells: list[Cell], results_dir: Path, judge: str | None, drop_bos: bool) -> None:
    from logitdiff.experiments.judge_choice import resolve_judge_id

    judge_id = resolve_judge_id(judge)
    store = ResultsStore(results_dir, drop_bos=drop_bos)
    table = Table(title=f"{cells[0].experiment} · {cells[0].model} · {cells[0].organism} · judge {judge_id}")
    for col in ("task", "seed", cells[0].swept, "method", "state", "detail"):
        table.add_column(col)
    counts: dict[str, int] = {}
    for cell in cells:
        state, detail = cell_state(store, cell, judge_id)
        counts[state] = counts.get(state, 0) + 1
        style = {"done": "green", "failed": "red", "missing": "yellow"}.get(state, "cyan")
        table.add_row(str(cell.index), str(cell.seed), str(cell.value), cell.method, f"[{style}]{state}[/]", detail)
    console = Console()
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
