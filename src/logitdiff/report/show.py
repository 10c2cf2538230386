"""`logitdiff show`: stored results in the terminal, for login nodes without Jupyter.

Prints the relevance table (mean ± SD over the selected seeds, per method, graded list and value) and,
per cell, the graded top tokens with their weights and labels, as rich tables.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from logitdiff.core.cell import Cell
from logitdiff.report.bands import CONTROL_COLUMN, control_organisms
from logitdiff.report.collect import MAIN_ORDERING, collect
from logitdiff.results.store import ResultsStore

_LABEL_STYLE = {"RELEVANT": "green", "IRRELEVANT": "red"}


def select_cells(cells: list[Cell], value: str | None, seed: int | None, method: str | None) -> list[Cell]:
    return [
        c for c in cells
        if (value is None or str(c.value) == value) and (seed is None or c.seed == seed) and (method is None or c.method == method)
    ]


def _list_name(row: pd.Series) -> str:
    return f"position {int(row['position'])}" if row["method"] == "adl" else str(row["ordering"])


def _mean_sd(values: pd.Series) -> str:
    vals = values.dropna()
    if vals.empty:
        return "–"
    sd = f" ± {100 * vals.std():.1f}" if len(vals) > 1 else ""
    return f"{100 * vals.mean():.1f}{sd}"


def relevance_table(df: pd.DataFrame, parameter: str) -> Table:
    table = Table()
    for col in ("method", "list", parameter, "seeds", "relevant %", "weighted %", "trivial %", "control %"):
        table.add_column(col, justify="right" if col not in ("method", "list") else "left")
    df = df.assign(list=df.apply(_list_name, axis=1))
    for (method, name, value), part in df.groupby(["method", "list", "value"], sort=False):
        ok = part[part["failed"].isna()]
        table.add_row(str(method), str(name), str(value), str(ok["seed"].nunique()),
                      _mean_sd(ok["percentage"]), _mean_sd(ok["weighted_percentage"]), _mean_sd(ok["trivial_percentage"]),
                      _mean_sd(ok[CONTROL_COLUMN]) if CONTROL_COLUMN in ok else "–")
    return table


def tokens_heading(row: pd.Series, parameter: str) -> Text:
    score = "grading failed: " + str(row["failed"]) if row["failed"] else f"{100 * row['percentage']:.1f}% relevant"
    if not row["failed"] and pd.notna(row.get(CONTROL_COLUMN)):
        score += f" (control against {row['control_organism']}: {_mean_sd(pd.Series([row[CONTROL_COLUMN]]))}%)"
    return Text(f"seed {row['seed']} · {parameter}={row['value']} · {row['method']} {_list_name(row)} · {score}", style="bold")


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
    console.print(Text(f"token relevance (mean ± SD over seeds) · {head}", style="bold"))
    console.print(relevance_table(df, c0.swept))
    if control_organisms(df):
        console.print(Text(f"control %: the same lists graded against {', '.join(control_organisms(df))} (negative control)"))
    shown = df if all_orderings else df[(df["method"] == "adl") | (df["ordering"] == MAIN_ORDERING)]
    for _, row in shown.iterrows():
        console.print(tokens_heading(row, c0.swept))
        console.print(tokens_table(row))
    if got.missing:
        console.print(f"[yellow]{len(got.missing)} cells without grades[/], e.g. {got.missing[0]}")
    return len(shown)
