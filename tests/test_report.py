"""Report numbers with known answers: which records are points, mean ± population SD, files and axes."""

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from logitdiff.core.atomic import read_json, write_json
from logitdiff.report.bands import mean_sd, relevance_points, relevance_stats, relevance_summary
from logitdiff.report.build import dataset_name
from logitdiff.report.plots import plot_agent, plot_relevance


def _row(method: str, value: object, seed: int, pct: float, ordering: str | None = None, position: int | None = None) -> dict[str, object]:
    return {"method": method, "value": value, "seed": seed, "ordering": ordering, "position": position,
            "percentage": pct, "weighted_percentage": pct / 2, "failed": None}


def test_relevance_points_are_main_ordering_and_every_adl_position() -> None:
    df = pd.DataFrame(
        [
            _row("logitdiff", "a", 1, 40.0, ordering="top_k_occurring"),
            _row("logitdiff", "a", 1, 90.0, ordering="fraction_positive_diff"),  # not plotted
            *[_row("adl", "a", 1, p, position=i) for i, p in enumerate([10.0, 20.0, 30.0, 40.0, 50.0])],
            {**_row("adl", "a", 1, 99.0, position=5), "failed": "HTTP 500"},  # failed lists are left out
        ]
    )
    points = relevance_points(df, "percentage")
    assert sorted(points[points["method"] == "adl"]["percentage"]) == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert points[points["method"] == "logitdiff"]["percentage"].tolist() == [40.0]


def test_adl_band_pools_positions_and_seeds_with_population_sd() -> None:
    # Seed 1: positions 0-3 at 0 %, position 4 at 100 %; seed 2: all five at 100 %.
    # Pooled 10 points (4 zeros, 6 hundreds): mean 60, population SD sqrt((4*60^2 + 6*40^2)/10) = sqrt(2400).
    # (Per-seed means 20 and 100 would give SD 40 with ddof=0 or 56.6 with ddof=1.)
    df = pd.DataFrame(
        [_row("adl", "v", 1, 100.0 if i == 4 else 0.0, position=i) for i in range(5)]
        + [_row("adl", "v", 2, 100.0, position=i) for i in range(5)]
    )
    got = relevance_stats(df, "percentage").iloc[0]
    assert (got["mean"], got["count"]) == (60.0, 10)
    assert got["std"] == pytest.approx(2400**0.5)


def test_plot_relevance_mean_and_population_sd_over_seeds(tmp_path: Path) -> None:
    df = pd.DataFrame(
        [_row("logitdiff", k, s, pct, ordering="top_k_occurring") for k, s, pct in [(5, 1, 20.0), (5, 2, 40.0), (50, 1, 60.0), (50, 2, 60.0)]]
    )
    stats = plot_relevance(df, "percentage", [5, 50], "top_k", "title", tmp_path / "r.png").set_index("value")
    assert stats.loc[5, "mean"] == 30.0 and stats.loc[5, "std"] == 10.0  # ddof=0, as the reference's figures
    assert stats.loc[50, "mean"] == 60.0 and stats.loc[50, "std"] == 0.0
    assert mpimg.imread(tmp_path / "r.png").shape[2] in (3, 4)


def test_plot_agent_blackbox_band_outside_mix_ratio(tmp_path: Path) -> None:
    df = pd.DataFrame(
        [{"method": "logitdiff", "value": v, "score": s} for v in (5, 50) for s in (2, 4)]
        + [{"method": "blackbox", "value": 5, "score": s} for s in (1, 1, 1, 3)]
    )
    stats = plot_agent(df, [5, 50], "top_k", "title", tmp_path / "a.png")
    rows = {(m, v): (mean, sd) for m, v, mean, sd in stats[["method", "value", "mean", "std"]].values.tolist()}
    assert rows == {("logitdiff", 5): (3.0, 1.0), ("logitdiff", 50): (3.0, 1.0), ("blackbox", 5): (1.5, pytest.approx(0.75**0.5))}
    assert (tmp_path / "a.png").stat().st_size > 0


def test_plot_agent_blackbox_curve_per_variant_in_mix_ratio(tmp_path: Path) -> None:
    df = pd.DataFrame(
        [{"method": m, "value": v, "score": 3} for m in ("logitdiff", "adl") for v in ("default", "mix1-1p0")]
        + [{"method": "blackbox", "value": "default", "score": s} for s in (1, 3)]
        + [{"method": "blackbox", "value": "mix1-1p0", "score": 5}]
    )
    stats = plot_agent(df, ["default", "mix1-1p0"], "variant", "title", tmp_path / "a.png")
    baseline = stats[stats["method"] == "blackbox"].set_index("value")
    assert baseline["mean"].to_dict() == {"default": 2.0, "mix1-1p0": 5.0}
    assert baseline["std"].to_dict() == {"default": 1.0, "mix1-1p0": 0.0}


def test_dataset_names() -> None:
    assert dataset_name("science-of-finetuning/fineweb-1m-sample") == "fineweb-1m-sample"
    assert dataset_name("organisms/generic/diffing.jsonl.gz") == "diffing"


def test_summary_keeps_numeric_values_and_prints_bands_one_way(tmp_path: Path) -> None:
    df = pd.DataFrame([{**_row("logitdiff", k, s, pct, ordering="top_k_occurring"), "trivial_percentage": None}
                       for k, s, pct in [(5, 1, 20.0), (5, 2, 40.0)]])
    write_json(tmp_path / "s.json", relevance_summary(df))
    (rec,) = read_json(tmp_path / "s.json")
    assert rec["value"] == 5 and rec["label"] == "LogitDiff TopK" and "trivial_percentage" not in rec
    assert rec["percentage"] == {"mean": 30.0, "sd": 10.0, "points": 2}
    assert [mean_sd(30.0, 10.0, 2), mean_sd(30.0, 0.0, 1), mean_sd(float("nan"), 0.0, 0)] == ["30.0 ± 10.0", "30.0", "–"]
