"""view_plots.ipynb runs headless on the outputs of real (tiny) experiment runs and shows what the runs wrote.

The relevance table is checked against the run's own `token_relevance_results.json` (percentages are
stored as 0-100) recomputed here by hand, and against the numbers the plotting function draws.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from logitdiff.report.bands import control_stats
from logitdiff.report.plots import plot_relevance
from testkit.openai_server import ChatServer, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, build_tiny_setup

NOTEBOOK = Path(__file__).resolve().parents[1] / "view_plots.ipynb"
SEEDS = (42, 1042)


def run_logitdiff(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(["logitdiff", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    # n-samples has a cell that asks for more long texts than the corpus holds: that run reports it and exits 1.
    assert done.returncode in (0, 1), done.stderr[-2000:]


class TableRows(HTMLParser):
    """The rows of a pandas HTML table; an index cell spanning rows is repeated in each of them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._spans: dict[int, tuple[str, int]] = {}
        self._cell: str | None = None
        self._rowspan = 1
        self.feed(html)

    def _fill_spans(self) -> None:
        row = self.rows[-1]
        while len(row) in self._spans:
            text, left = self._spans.pop(len(row))
            if left > 1:
                self._spans[len(row)] = (text, left - 1)
            row.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell, self._rowspan = "", int(dict(attrs).get("rowspan") or 1)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            self._fill_spans()
            if self._rowspan > 1:
                self._spans[len(self.rows[-1])] = (self._cell.strip(), self._rowspan - 1)
            self.rows[-1].append(self._cell.strip())
            self._cell = None


def outputs_of(cell: nbformat.NotebookNode, kind: str) -> list[str]:
    return [o["data"][kind] for o in cell.get("outputs", []) if kind in o.get("data", {})]


def relevance_tables(nb: nbformat.NotebookNode) -> dict[str, dict[tuple[str, str], list[str]]]:
    """Per result folder heading ('topk_depth', …): the relevance table's cells by (method, value)."""
    tables: dict[str, dict[tuple[str, str], list[str]]] = {}
    section = ""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if data.get("text/markdown", "").startswith("## "):
                section = data["text/markdown"][3:].split(" · ")[0]
            elif "text/html" in data and "relevant % mean" in data["text/html"]:
                rows = TableRows(data["text/html"]).rows
                tables[section] = {(r[1], r[2]): r[3:] for r in rows if len(r) == 12 and r[1] in ("logitdiff", "adl")}
    return tables


def by_hand(records: list[dict], column: str) -> dict[tuple[str, str], tuple[float, float, int]]:
    """Mean, population SD and count of the plotted points: LogitDiff's main ordering per seed, ADL per seed × position."""
    points: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r["failed"] is None and r[column] is not None and (r["method"] == "adl" or r["ordering"] == "top_k_occurring"):
            points.setdefault((r["method"], str(r["value"])), []).append(r[column])
    return {k: (statistics.fmean(v), statistics.pstdev(v), len(v)) for k, v in points.items()}


@pytest.mark.slow
def test_notebook_shows_what_the_runs_wrote(tmp_path: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_server.reset(scripted_judge)
    setup = build_tiny_setup(tmp_path / "tiny")
    env = {**setup.env, "LOGITDIFF_CACHE": str(tmp_path / "cache")}
    common = ["--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--mode", "diffing", "--seeds", ",".join(map(str, SEEDS)),
              "--judge", f"vllm/scripted-judge@{chat_server.base_url}", "--results-dir", "results", "--output-dir", "outputs"]
    run_logitdiff(["topk-depth", *common, "--values", "5,10", "--samples", "4", "--positions", "6"], env, tmp_path)
    run_logitdiff(["mix-ratio", *common, "--values", "default,mix1-0p5", "--samples", "4", "--positions", "7", "--top-k", "5"], env, tmp_path)
    # S=10 at T=100: 17 tiny texts have the bytes for 100 tokens (the check before the run passes), 5 the tokens.
    run_logitdiff(["n-samples", *common, "--values", "4,10", "--positions", "100", "--top-k", "5"], env, tmp_path)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("LOGITDIFF_OUTPUT_DIR", str(tmp_path / "outputs"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    images = [img for cell in nb.cells for img in outputs_of(cell, "image/png")]
    assert len(images) == 7  # unweighted + weighted relevance for each of the three experiments, and the mix-ratio figure
    markdown = "\n".join(m for cell in nb.cells for m in outputs_of(cell, "text/markdown"))
    assert "**3 result folders under" in markdown
    assert "## mix_ratio · tiny_llama · tiny_cake" in markdown and "## topk_depth · tiny_llama · tiny_cake" in markdown
    # The one n-samples cell per seed that needs 10 texts of 100 tokens is reported missing with its reason.
    assert "**Missing: 2**" in markdown and "samples=10" in markdown and "only 5 usable texts" in markdown

    tables = relevance_tables(nb)
    for experiment, values, parameter in (("topk_depth", [5, 10], "top_k"), ("mix_ratio", ["default", "mix1-0p5"], "variant")):
        records = json.loads((tmp_path / "outputs" / experiment / TINY_MODEL / TINY_ORGANISM / "token_relevance_results.json").read_text())
        assert records and all(r["failed"] is None for r in records)
        shown = tables[experiment]
        # The control column: the same lists graded against another configured organism's description.
        assert all(r["control_organism"] and r["control_percentage"] is not None for r in records)
        for i, column in enumerate(("percentage", "weighted_percentage", "control_percentage")):
            expected = by_hand(records, column)
            assert set(shown) == set(expected)
            plotted = (control_stats(pd.DataFrame(records)) if column == "control_percentage"
                       else plot_relevance(pd.DataFrame(records), column, values, parameter, "replot", tmp_path / "replot.png"))
            for (method, value), (mean, sd, count) in expected.items():
                assert 0 <= mean <= 100
                assert count == (len(SEEDS) * 5 if method == "adl" else len(SEEDS))
                cells = shown[(method, value)][3 * i : 3 * i + 3]
                assert (float(cells[0]), float(cells[1]), int(cells[2])) == (round(mean, 1), round(sd, 1), count), (experiment, method, value, column)
                line = plotted[(plotted["method"] == method) & (plotted["value"].astype(str) == value)].iloc[0]
                assert (line["mean"], line["std"], line["count"]) == (pytest.approx(mean), pytest.approx(sd), count)
    # The runs graded something relevant and something not: the comparison above is not all zeros.
    all_means = [m for experiment in ("topk_depth", "mix_ratio") for m, *_ in tables[experiment].values()]
    assert any(float(m) > 0 for m in all_means) and any(float(m) < 100 for m in all_means)
    assert "population SD (ddof=0)" in markdown  # the table states the SD the plots use
