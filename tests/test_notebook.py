"""view_plots.ipynb runs headless against results of a real (tiny) experiment run and shows them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from tiny_experiment import TINY_MODEL, TINY_ORGANISM, build_tiny_setup

NOTEBOOK = Path(__file__).resolve().parents[1] / "view_plots.ipynb"


def run_logitdiff(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(["logitdiff", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    # n-samples has a cell that asks for more texts than the corpus holds: that run reports it and exits 1.
    assert done.returncode in (0, 1), done.stderr[-2000:]


KNOWN = {(5, 42): 0.2, (5, 1042): 0.4, (10, 42): 0.5, (10, 1042): 0.5}


def set_known_percentages(path: Path) -> None:
    records = json.loads(path.read_text())
    assert {(r["value"], r["seed"]) for r in records} == set(KNOWN)
    assert all(r["failed"] is None for r in records)
    for r in records:
        r["percentage"] = KNOWN[(r["value"], r["seed"])]
        r["weighted_percentage"] = KNOWN[(r["value"], r["seed"])] / 2
    path.write_text(json.dumps(records))


def table_row(html: str, value: int) -> list[str]:
    """The cells of the summary-table row whose innermost index is `value`."""
    found = re.search(rf"<th>{value}</th>\s*((?:<td>[^<]*</td>\s*)+)", html)
    assert found, f"no row for value {value}"
    return re.findall(r"<td>([^<]*)</td>", found.group(1))


def outputs_of(cell: nbformat.NotebookNode, kind: str) -> list[str]:
    return [o["data"][kind] for o in cell.get("outputs", []) if kind in o.get("data", {})]


@pytest.mark.slow
def test_notebook_shows_plots_tables_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = build_tiny_setup(tmp_path / "tiny")
    common = ["--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--mode", "diffing", "--seeds", "42,1042", "--positions", "6", "--judge", "offline", "--results-dir", "results", "--output-dir", "outputs"]
    run_logitdiff(["topk-depth", *common, "--values", "5,10", "--samples", "4"], setup.env, tmp_path)
    run_logitdiff(["n-samples", *common, "--values", "4,1000", "--top-k", "5"], setup.env, tmp_path)

    # Known percentages per (value, seed) in the real run's stored summary, so the table has known answers.
    set_known_percentages(tmp_path / "outputs" / "topk_depth" / TINY_MODEL / TINY_ORGANISM / "token_relevance_results.json")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("LOGITDIFF_OUTPUT_DIR", str(tmp_path / "outputs"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    images = [img for cell in nb.cells for img in outputs_of(cell, "image/png")]
    assert len(images) == 4  # unweighted + weighted relevance for each of the two experiments
    html = "\n".join(h for cell in nb.cells for h in outputs_of(cell, "text/html"))
    markdown = "\n".join(m for cell in nb.cells for m in outputs_of(cell, "text/markdown"))
    assert "**2 result folders under" in markdown
    assert "## topk_depth · tiny_llama · tiny_cake" in markdown and "## n_samples · tiny_llama · tiny_cake" in markdown
    # The one n-samples cell per seed that needs 1000 texts is reported missing with its reason.
    assert "**Missing: 2**" in markdown and "samples=1000" in markdown and "only 24 usable texts" in markdown

    # The summary table: mean and SD over seeds, in %, of the plotted numbers (the main ordering).
    td = {value: table_row(html, value) for value in (5, 10)}
    assert td == {5: ["30.0", "14.1", "2", "15.0", "7.1", "2"], 10: ["50.0", "0.0", "2", "25.0", "0.0", "2"]}, td
