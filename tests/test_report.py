"""Report numbers with known answers: per-seed aggregation, mean ± SD over seeds, files and axes."""

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from logitdiff.report.build import dataset_name
from logitdiff.report.plots import plot_agent, plot_relevance, relevance_per_seed


def _row(method: str, value: object, seed: int, pct: float, ordering: str | None = None, position: int | None = None) -> dict[str, object]:
    return {"method": method, "value": value, "seed": seed, "ordering": ordering, "position": position,
            "percentage": pct, "weighted_percentage": pct / 2, "failed": None}


def test_relevance_per_seed_uses_main_ordering_and_averages_adl_positions() -> None:
    df = pd.DataFrame(
        [
            _row("logitdiff", "a", 1, 40.0, ordering="top_k_occurring"),
            _row("logitdiff", "a", 1, 90.0, ordering="fraction_positive_diff"),  # not plotted
            *[_row("adl", "a", 1, p, position=i) for i, p in enumerate([10.0, 20.0, 30.0, 40.0, 50.0])],
            {**_row("adl", "a", 1, 99.0, position=5), "failed": "HTTP 500"},  # failed lists are left out
        ]
    )
    got = relevance_per_seed(df, "percentage").set_index("method")["percentage"].to_dict()
    assert got == {"logitdiff": 40.0, "adl": 30.0}


def test_plot_relevance_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    df = pd.DataFrame(
        [_row("logitdiff", k, s, pct, ordering="top_k_occurring") for k, s, pct in [(5, 1, 20.0), (5, 2, 40.0), (50, 1, 60.0), (50, 2, 60.0)]]
    )
    stats = plot_relevance(df, "percentage", [5, 50], "top_k", "title", tmp_path / "r.png").set_index("value")
    assert stats.loc[5, "mean"] == 30.0 and stats.loc[5, "std"] == pytest.approx(14.142, abs=1e-3)
    assert stats.loc[50, "mean"] == 60.0 and stats.loc[50, "std"] == 0.0
    assert mpimg.imread(tmp_path / "r.png").shape[2] in (3, 4)


def test_plot_agent_excludes_blackbox_from_method_lines(tmp_path: Path) -> None:
    df = pd.DataFrame(
        [{"method": "logitdiff", "value": 5, "score": s} for s in (2, 4)] + [{"method": "blackbox", "value": 5, "score": 1}]
    )
    stats = plot_agent(df, [5], "top_k", "title", tmp_path / "a.png")
    assert stats[["method", "mean"]].values.tolist() == [["logitdiff", 3.0]]
    assert (tmp_path / "a.png").stat().st_size > 0


def test_dataset_names() -> None:
    assert dataset_name("science-of-finetuning/fineweb-1m-sample") == "fineweb-1m-sample"
    assert dataset_name("organisms/generic/diffing.jsonl.gz") == "diffing"
