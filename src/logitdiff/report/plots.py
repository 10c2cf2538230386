"""Draw the experiment plots from collected DataFrames (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from logitdiff.report.collect import MAIN_ORDERING  # noqa: E402

METHOD_LABELS = {"logitdiff": "LogitDiff TopK", "adl": "ADL logit lens", "blackbox": "Blackbox agent"}
PARAMETER_LABELS = {"top_k": "K (top-K depth)", "positions": "T (positions per text)", "samples": "S (texts)", "variant": "organism variant"}


def relevance_per_seed(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """One number (in %) per (method, value, seed): the main LogitDiff ordering, ADL averaged over positions."""
    ok = df[df["failed"].isna() & df[column].notna()]
    ok = ok[(ok["method"] == "adl") | (ok["ordering"] == MAIN_ORDERING)]
    return ok.groupby(["method", "value", "seed"], sort=False, as_index=False)[column].mean()


def _x_positions(values: list[object], categorical: bool) -> dict[object, float]:
    return {v: float(i) for i, v in enumerate(values)} if categorical else {v: float(v) for v in values}  # type: ignore[arg-type]


def _setup_axes(ax: plt.Axes, parameter: str, values: list[object], categorical: bool) -> None:
    ax.set_xlabel(PARAMETER_LABELS.get(parameter, parameter))
    if categorical:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    else:
        ax.set_xscale("log")
        ax.set_xticks([float(v) for v in values], [str(v) for v in values])  # type: ignore[arg-type]
        ax.minorticks_off()
    ax.grid(alpha=0.3)


def _finish(fig: plt.Figure, ax: plt.Axes, parameter: str, values: list[object], categorical: bool,
            ylim: tuple[float, float], ylabel: str, title: str, path: Path) -> None:
    _setup_axes(ax, parameter, values, categorical)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_relevance(df: pd.DataFrame, column: str, values: list[object], parameter: str, title: str, path: Path) -> pd.DataFrame:
    """Mean ± 1 SD over seeds, line + band; returns the plotted numbers."""
    per_seed = relevance_per_seed(df, column)
    stats = per_seed.groupby(["method", "value"], sort=False)[column].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    categorical = parameter == "variant"
    xs = _x_positions(values, categorical)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, group in stats.groupby("method", sort=False):
        group = group.assign(x=group["value"].map(xs)).sort_values("x")
        mean, sd = group["mean"], group["std"]
        ax.plot(group["x"], mean, marker="o", label=METHOD_LABELS.get(str(method), str(method)))
        ax.fill_between(group["x"], (mean - sd).clip(0, 100), (mean + sd).clip(0, 100), alpha=0.2)
    ylabel = "relevant tokens, weighted (%)" if column == "weighted_percentage" else "relevant tokens (%)"
    _finish(fig, ax, parameter, values, categorical, (0, 100), ylabel, title, path)
    return stats


def plot_agent(df: pd.DataFrame, values: list[object], parameter: str, title: str, path: Path) -> pd.DataFrame:
    """Agent score (1–5) per value, mean ± 1 SD; the blackbox baseline as a dashed horizontal band."""
    categorical = parameter == "variant"
    xs = _x_positions(values, categorical)
    methods = df[df["method"] != "blackbox"]
    stats = methods.groupby(["method", "value"], sort=False)["score"].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, group in stats.groupby("method", sort=False):
        group = group.assign(x=group["value"].map(xs)).sort_values("x")
        ax.plot(group["x"], group["mean"], marker="o", label=METHOD_LABELS.get(str(method), str(method)))
        ax.fill_between(group["x"], group["mean"] - group["std"], group["mean"] + group["std"], alpha=0.2)
    blackbox = df[df["method"] == "blackbox"]["score"]
    if len(blackbox):
        mean, sd = float(blackbox.mean()), float(blackbox.std()) if len(blackbox) > 1 else 0.0
        ax.axhline(mean, linestyle="--", color="gray", label=f"{METHOD_LABELS['blackbox']} ({mean:.2f})")
        ax.axhspan(mean - sd, mean + sd, color="gray", alpha=0.15)
    _finish(fig, ax, parameter, values, categorical, (0.8, 5.2), "agent score (1–5)", title, path)
    return stats
