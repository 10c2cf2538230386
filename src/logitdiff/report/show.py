"""`logitdiff show`: stored results in the terminal, for login nodes without Jupyter.

Prints the relevance the plots draw (per method and value: mean ± population SD over the points,
see report/bands.py), the same per graded list (mean ± SD over seeds), and, per cell, the graded top
tokens with their weights and labels, as rich tables. Every number comes from report/bands.py.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from logitdiff.core.cell import DEFAULT_READOUT, Cell
from logitdiff.report.bands import CONTROL_COLUMN, RELEVANCE_COLUMNS, control_organisms, list_name, list_stats, mean_sd, method_label, method_series, plotted_lists, relevance_stats
from logitdiff.report.collect import collect
from logitdiff.results.store import ResultsStore

_LABEL_STYLE = {"RELEVANT": "green", "IRRELEVANT": "red"}
_METRIC_HEADS = ("relevant %", "weighted %", "trivial %", "control %")


def select_cells(cells: list[Cell], value: str | None, seed: int | None, method: str | None) -> list[Cell]:
    return [
        c for c in cells
        if (value is None or str(c.value) == value) and (seed is None or c.seed == seed) and (method is None or c.method == method)
    ]


def _metric_cells(stats: dict[str, pd.DataFrame], keys: tuple[object, ...], key_names: list[str]) -> list[str]:
    out = []
    for column in RELEVANCE_COLUMNS:
        part = stats[column]
        match = part[(part[key_names] == pd.Series(keys, index=key_names)).all(axis=1)]
        out.append("–" if match.empty else mean_sd(float(match["mean"].iloc[0]), float(match["std"].iloc[0]), int(match["count"].iloc[0])))
    return out


def plotted_table(df: pd.DataFrame, parameter: str) -> Table:
    """Per method and value: the line and band of the plots (LogitDiff: one point per seed; ADL: seed × position)."""
    stats = {col: relevance_stats(df, col) for col in RELEVANCE_COLUMNS}
    table = Table()
    for col in ("method", parameter, "points", *_METRIC_HEADS):
        table.add_column(col, justify="left" if col == "method" else "right")
    for row in stats["percentage"].itertuples(index=False):
        table.add_row(method_label(str(row.method)), str(row.value), str(row.count), *_metric_cells(stats, (row.method, row.value), ["method", "value"]))
    return table


def lists_table(df: pd.DataFrame, parameter: str) -> Table:
    """Per method, graded list and value: mean ± SD over seeds."""
    stats = {col: list_stats(df, col) for col in RELEVANCE_COLUMNS}
    table = Table()
    for col in ("method", "list", parameter, "seeds", *_METRIC_HEADS):
        table.add_column(col, justify="left" if col in ("method", "list") else "right")
    for row in stats["percentage"].itertuples(index=False):
        keys = (row.method, row.list, row.value)
        table.add_row(method_label(str(row.method)), str(row.list), str(row.value), str(row.count),
                      *_metric_cells(stats, keys, ["method", "list", "value"]))
    return table


def tokens_heading(row: pd.Series, parameter: str) -> Text:
    score = "grading failed: " + str(row["failed"]) if row["failed"] else f"{row['percentage']:.1f}% relevant"
    if not row["failed"] and pd.notna(row.get(CONTROL_COLUMN)):
        score += f" (control against {row['control_organism']}: {row[CONTROL_COLUMN]:.1f}%)"
    name = list_name(row["position"], row["ordering"])
    return Text(f"seed {row['seed']} · {parameter}={row['value']} · {method_label(str(row['method']))} {name} · {score}", style="bold")


def tokens_table(row: pd.Series) -> Table:
    table = Table()
    for col, justify in (("#", "right"), ("token", "left"), ("weight", "right"), ("label", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for rank, tok in enumerate(row["tokens"], start=1):
        label = str(tok["label"])
        # Text, not markup: tokens like "[/" must print as they are; repr shows leading spaces.
        table.add_row(str(rank), Text(repr(tok["token"])), f"{tok['weight']:.4g}", Text(label, style=_LABEL_STYLE.get(label, "yellow")))
    return table


def show(cells: list[Cell], store: ResultsStore, judge_id: str, console: Console, *, all_orderings: bool = False) -> int:
    """Print the tables; returns the number of graded lists shown."""
    got = collect(cells, store, judge_id)
    c0 = cells[0]
    head = f"{c0.experiment} · {c0.model} · {c0.organism} · judge {judge_id}"
    if got.relevance.empty:
        console.print(f"{head}: no graded results for these cells (see `logitdiff status`)")
        return 0
    df = got.relevance
    # Headings as lines, not table titles: a title is cut to the table's width.
    console.print(Text(f"token relevance as plotted (mean ± population SD over the points) · {head}", style="bold"))
    console.print(plotted_table(df, c0.swept))
    console.print(Text("token relevance per graded list (mean ± population SD over seeds)", style="bold"))
    console.print(lists_table(df, c0.swept))
    if control_organisms(df):
        console.print(Text(f"control %: the same lists graded against {', '.join(control_organisms(df))} (negative control)"))
    shown = df if all_orderings else df[plotted_lists(df)]
    shown = shown.assign(method=method_series(shown))
    for _, row in shown.iterrows():
        console.print(tokens_heading(row, c0.swept))
        console.print(tokens_table(row))
    if got.missing:
        console.print(f"[yellow]{len(got.missing)} cells without grades[/], e.g. {got.missing[0]}")
    return len(shown)


def stored_readouts(cells: list[Cell], store: ResultsStore, judge_id: str) -> list[Cell]:
    """The cells of every readout that has grades stored for some cell (the default readout always
    stays, so a grid with nothing stored still lists its missing cells as before)."""
    graded = {c.readout for c in cells if store.relevance(c, judge_id).is_file()}
    return [c for c in cells if c.readout == DEFAULT_READOUT or c.readout in graded]
