"""`logitdiff show` prints, from a real tiny run's stored results, the graded top tokens with their
weights and labels and the relevance table (mean ± SD over seeds)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from logitdiff.config.loader import Registry
from logitdiff.core.atomic import read_json, write_json
from logitdiff.experiments.grid import GridOptions, expand
from logitdiff.judge.offline import OFFLINE_JUDGE_ID
from logitdiff.results.records import RelevanceResult
from logitdiff.results.store import ResultsStore
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup, build_tiny_setup

pytestmark = pytest.mark.slow  # a real tiny run of the CLI

GRID = ["--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--seeds", "42,1042", "--values", "5,10", "--samples", "4", "--positions", "6", "--judge", "offline"]
JUDGE = OFFLINE_JUDGE_ID  # the id the run stores its grades under


def logitdiff(setup: TinySetup, *args: str, expect: int = 0, results: Path | None = None) -> str:
    env = {**setup.env, "COLUMNS": "200"}  # wide enough that no table row wraps
    done = subprocess.run(["logitdiff", *args, "--results-dir", str(results or setup.results)], env=env, cwd=setup.root, capture_output=True, text=True, timeout=600)
    assert done.returncode == expect, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def rows(text: str) -> list[list[str]]:
    """Body rows of every rich table in the output, as stripped cell texts."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinySetup, dict[tuple[int, int], RelevanceResult]]:
    setup = build_tiny_setup(tmp_path_factory.mktemp("show"))
    logitdiff(setup, "topk-depth", *GRID, "--mode", "diffing")
    reg = Registry.load(setup.configs)
    cells = expand(reg, reg.experiment("topk-depth"), GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42, 1042], values=["5", "10"], samples=4, positions=6))
    store = ResultsStore(setup.results)
    stored = {(c.seed, int(c.value)): RelevanceResult.model_validate(read_json(store.relevance(c, JUDGE))) for c in cells}
    return setup, stored


def test_show_prints_graded_tokens_of_one_cell(run: tuple[TinySetup, dict[tuple[int, int], RelevanceResult]]) -> None:
    setup, stored = run
    out = logitdiff(setup, "show", "topk-depth", *GRID, "--value", "5", "--seed", "42")
    main = next(lst for lst in stored[(42, 5)].lists if lst.list_id == "top_k_occurring")
    assert main.labels and main.metrics
    expected = [[str(i), repr(c.token), f"{c.weight:.4g}", label] for i, c in enumerate(main.candidates, start=1) for label in [main.labels[i - 1]]]
    token_rows = [r for r in rows(out) if len(r) == 4]
    assert token_rows == expected, out
    assert f"seed 42 · top_k=5 · logitdiff top_k_occurring · {100 * main.metrics.percentage:.1f}% relevant" in out
    assert "fraction_positive_diff ·" not in out  # token tables: the main ordering only by default
    both = logitdiff(setup, "show", "topk-depth", *GRID, "--value", "5", "--seed", "42", "--all-orderings")
    assert len([r for r in rows(both) if len(r) == 4]) == 2 * len(expected)


# Known percentages per (seed, value, ordering), written into a copy of the stored grades: the tiny
# model's offline grades are all 0%, which would not tell a mean from a sum.
KNOWN = {(42, 5): 0.2, (1042, 5): 0.4, (42, 10): 0.5, (1042, 10): 0.9}


def test_show_relevance_table_is_mean_and_sd_over_seeds(run: tuple[TinySetup, dict[tuple[int, int], RelevanceResult]], tmp_path: Path) -> None:
    setup, _ = run
    results = tmp_path / "results"
    shutil.copytree(setup.results, results)
    for path in results.rglob(f"relevance/{JUDGE.replace('/', '_')}*.json"):
        doc = read_json(path)
        for lst in doc["lists"]:
            pct = KNOWN[(doc["cell"]["seed"], doc["cell"]["value"])] / (1 if lst["list_id"] == "top_k_occurring" else 2)
            lst["metrics"].update(percentage=pct, weighted_percentage=pct / 4)
        write_json(path, doc)
    out = logitdiff(setup, "show", "topk-depth", *GRID, results=results)
    table = {(r[0], r[1], r[2]): r[3:6] for r in rows(out) if len(r) == 8}
    assert table == {
        ("logitdiff", "top_k_occurring", "5"): ["2", "30.0 ± 14.1", "7.5 ± 3.5"],
        ("logitdiff", "top_k_occurring", "10"): ["2", "70.0 ± 28.3", "17.5 ± 7.1"],
        ("logitdiff", "fraction_positive_diff", "5"): ["2", "15.0 ± 7.1", "3.8 ± 1.8"],
        ("logitdiff", "fraction_positive_diff", "10"): ["2", "35.0 ± 14.1", "8.8 ± 3.5"],
    }, out
    assert len([r for r in rows(out) if len(r) == 4]) == 4 * 20  # 2 seeds x 2 values, main ordering
    one_seed = logitdiff(setup, "show", "topk-depth", *GRID, "--seed", "1042", "--value", "10", results=results)
    assert sorted(r[3:5] for r in rows(one_seed) if len(r) == 8) == [["1", "45.0"], ["1", "90.0"]]


def test_show_errors_are_one_line(run: tuple[TinySetup, dict[tuple[int, int], RelevanceResult]]) -> None:
    setup, _ = run
    out = logitdiff(setup, "show", "topk-depth", *GRID, "--value", "7", expect=2)
    assert out.strip().startswith("error: no cell of topk-depth matches --value 7; values: 5, 10; seeds: 42, 1042")
    assert logitdiff(setup, "show", "topk-depth", *GRID, "--method", "lens", expect=2).strip() == "error: --method must be logitdiff or adl, got 'lens'"
