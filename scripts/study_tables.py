"""Markdown tables of a finished study, read from the summaries the runs wrote (token_relevance_results.json).

    python scripts/study_tables.py outputs [--model smollm2_135M] [--organism cake_bake]

Per experiment: swept value → LogitDiff relevance (top_k_occurring, mean over seeds) and, where the
experiment grades ADL, the mean over seeds and positions of each readout; then, for ADL, the top-20
lists of positions 1–4 of the first seed at each value, labels as the judge gave them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from logitdiff.report.collect import MAIN_ORDERING


def _rows(path: Path) -> pd.DataFrame:
    df = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    return df[df["failed"].isna()]


def _method(row: pd.Series) -> str | None:
    if row["method"] == "logitdiff":
        return "LogitDiff" if row["ordering"] == MAIN_ORDERING else None
    return f"ADL {row['readout'] or 'lens'}"


def relevance_table(df: pd.DataFrame) -> str:
    df = df.assign(column=df.apply(_method, axis=1)).dropna(subset=["column"])
    values = list(dict.fromkeys(df["value"]))
    mean = df.groupby(["value", "column"], sort=False)["percentage"].mean().unstack("column")
    seeds = df.groupby("value", sort=False)["seed"].nunique()
    columns = sorted(mean.columns, key=lambda c: (c != "LogitDiff", c))
    lines = [f"| {df['parameter'].iloc[0]} | {' | '.join(f'{c} %' for c in columns)} | seeds |", "|---" * (len(columns) + 2) + "|"]
    for v in values:
        cells = [("–" if pd.isna(mean.loc[v, c]) else f"{mean.loc[v, c]:.1f}") for c in columns]
        lines.append(f"| {v} | {' | '.join(cells)} | {seeds.loc[v]} |")
    return "\n".join(lines)


def adl_lists(df: pd.DataFrame, positions: range = range(1, 5)) -> str:
    adl = df[(df["method"] == "adl") & df["position"].isin(list(positions))]
    if adl.empty:
        return ""
    first_seed = adl["seed"].min()
    out = []
    for (value, readout), part in adl[adl["seed"] == first_seed].groupby(["value", "readout"], sort=False, dropna=False):
        out.append(f"{value}, {readout or 'lens'}, seed {first_seed}:")
        for _, row in part.sort_values("position").iterrows():
            toks = ", ".join(f"`{t['token'].strip() or repr(t['token'])}`{' R' if t['label'] == 'RELEVANT' else ''}" for t in row["tokens"])
            out.append(f"- pos {int(row['position'])} ({row['percentage']:.0f}%): {toks}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outputs", type=Path)
    ap.add_argument("--model", default="smollm2_135M")
    ap.add_argument("--organism", default="cake_bake")
    args = ap.parse_args()
    for folder in sorted(p for p in args.outputs.iterdir() if p.is_dir()):
        summary = folder / args.model / args.organism / "token_relevance_results.json"
        if not summary.is_file():
            continue
        df = _rows(summary)
        print(f"### {folder.name}\n\n{relevance_table(df)}\n")
        lists = adl_lists(df)
        if lists:
            print(f"{lists}\n")


if __name__ == "__main__":
    main()
