"""Mode plotting: collect a grid's stored results, write plots and the tidy JSON summaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from logitdiff.core.atomic import write_json
from logitdiff.core.cell import Cell
from logitdiff.report.axis import mix_ratio
from logitdiff.report.bands import agent_summary, relevance_summary
from logitdiff.report.collect import collect
from logitdiff.report.figure import FIGURE_NAME, plot_mix_ratio_figure
from logitdiff.report.plots import plot_agent, plot_relevance
from logitdiff.results.store import AgentKey, ResultsStore


def dataset_name(corpus: str) -> str:
    """Short name of a diffing corpus for file names: 'fineweb-1m-sample', 'diffing'."""
    name = Path(corpus).name
    for suffix in (".gz", ".jsonl", ".parquet", ".txt", ".json"):
        name = name.removesuffix(suffix)
    return name


def output_folder(output_dir: Path, cells: list[Cell]) -> Path:
    c = cells[0]
    return output_dir / c.experiment / c.model / c.organism


@dataclass
class ReportSummary:
    folder: Path
    files: list[Path]
    missing: list[str]


def _records(df: pd.DataFrame) -> list[dict[str, object]]:
    return [{k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in row.items()} for row in df.to_dict("records")]


def build_report(
    cells: list[Cell],
    store: ResultsStore,
    output_dir: Path,
    judge_id: str,
    judge_label: str,
    *,
    agent: AgentKey | None = None,
    agent_runs: int,
    blackbox: Sequence[Cell] = (),
) -> ReportSummary:
    """Plots and JSON summaries of `cells` in <output_dir>/<experiment>/<model>/<organism>/; with `agent`,
    the agent scores of the cells and of the blackbox baseline runs at `blackbox`."""
    folder = output_folder(output_dir, cells)
    got = collect(cells, store, judge_id, agent=agent, agent_runs=agent_runs, blackbox=blackbox)
    values = list(dict.fromkeys(c.value for c in cells))
    parameter = cells[0].swept
    head = f"{cells[0].experiment} · {cells[0].model} · {cells[0].organism}"
    files: list[Path] = []

    rel = got.relevance
    write_json(folder / "token_relevance_results.json", _records(rel))
    write_json(folder / "token_relevance_summary.json", relevance_summary(rel) if len(rel) else [])
    files += [folder / "token_relevance_results.json", folder / "token_relevance_summary.json"]
    if len(rel):
        for corpus, part in rel.groupby("corpus", sort=False):
            ds = dataset_name(str(corpus))
            for column, stem in (("percentage", "token_relevance"), ("weighted_percentage", "token_relevance_weighted")):
                path = folder / f"{stem}_{ds}.png"
                plot_relevance(part, column, values, parameter, f"{head} · {ds}\njudge: {judge_label}", path)
                files.append(path)
    if agent is not None:
        write_json(folder / "agent_results.json", _records(got.agent))
        write_json(folder / "agent_summary.json", agent_summary(got.agent) if len(got.agent) else [])
        files += [folder / "agent_results.json", folder / "agent_summary.json"]
        if len(got.agent):
            path = folder / "agent_score.png"
            plot_agent(got.agent, values, parameter, f"{head}\nagent: {agent.agent_id} (budget {agent.budget}) · grader: {agent.grader_id}", path)
            files.append(path)
    if parameter == "variant" and len(rel) and all(mix_ratio(str(v)) is not None for v in values):
        credits = f"judge: {judge_label}" + (f" · agent: {agent.agent_id} (budget {agent.budget}) · grader: {agent.grader_id}" if agent else "")
        plot_mix_ratio_figure(rel, got.agent, values, head, credits, folder / FIGURE_NAME)
        files.append(folder / FIGURE_NAME)
    write_json(folder / "missing.json", got.missing)
    return ReportSummary(folder, files, got.missing)
