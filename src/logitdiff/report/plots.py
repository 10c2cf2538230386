"""Draw the experiment plots from collected DataFrames (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from logitdiff.report.axis import XAxis, x_axis  # noqa: E402
from logitdiff.report.bands import AGENT_BAND_NOTE, BLACKBOX, CONTROL_NOTE, METHOD_LABELS, band_stats, control_organisms, control_stats, relevance_band_note, relevance_stats  # noqa: E402


def setup_axes(ax: plt.Axes, axis: XAxis) -> None:
    ax.set_xlabel(axis.label)
    xs = list(axis.positions.values())
    if axis.scale == "log":
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(xs, axis.ticks)
    ax.grid(alpha=0.3)


def save_figure(fig: plt.Figure, note: str, path: Path) -> None:
    fig.text(0.01, 0.01, note, fontsize=6.5, color="dimgray", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.035 * (note.count("\n") + 1) + 0.005, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finish(fig: plt.Figure, ax: plt.Axes, axis: XAxis, ylim: tuple[float, float], ylabel: str, title: str, note: str, path: Path) -> None:
    setup_axes(ax, axis)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, note, path)


def draw_relevance(ax: plt.Axes, stats: pd.DataFrame, axis: XAxis) -> None:
    """One line + band per method (stats: relevance_stats' rows)."""
    for method, group in stats.groupby("method", sort=False):
        group = group.assign(x=group["value"].map(axis.positions)).sort_values("x")
        mean, sd = group["mean"], group["std"].fillna(0.0)
        ax.plot(group["x"], mean, marker="o", label=METHOD_LABELS.get(str(method), str(method)))
        ax.fill_between(group["x"], (mean - sd).clip(0, 100), (mean + sd).clip(0, 100), alpha=0.2)


def draw_agent(ax: plt.Axes, stats: pd.DataFrame, axis: XAxis) -> None:
    """The agent score lines + bands, and the blackbox baseline: a dashed curve where each value is
    another finetune (variants), else one horizontal dashed band (stats: band_stats' rows of 'score')."""
    for method, group in stats[stats["method"] != BLACKBOX].groupby("method", sort=False):
        group = group.assign(x=group["value"].map(axis.positions)).sort_values("x")
        sd = group["std"].fillna(0.0)
        ax.plot(group["x"], group["mean"], marker="o", label=METHOD_LABELS.get(str(method), str(method)))
        ax.fill_between(group["x"], group["mean"] - sd, group["mean"] + sd, alpha=0.2)
    baseline = stats[stats["method"] == BLACKBOX]
    if axis.scale != "log" and len(baseline):
        curve = baseline.assign(x=baseline["value"].map(axis.positions)).sort_values("x")
        sd = curve["std"].fillna(0.0)
        ax.plot(curve["x"], curve["mean"], linestyle="--", marker="s", color="gray", label=METHOD_LABELS[BLACKBOX])
        ax.fill_between(curve["x"], curve["mean"] - sd, curve["mean"] + sd, color="gray", alpha=0.15)
    elif len(baseline):
        # Run only at the first value (one row); the model it probes is the same at every value.
        mean, sd = float(baseline["mean"].iloc[0]), float(baseline["std"].fillna(0.0).iloc[0])
        ax.axhline(mean, linestyle="--", color="gray", label=f"{METHOD_LABELS['blackbox']} ({mean:.2f})")
        ax.axhspan(mean - sd, mean + sd, color="gray", alpha=0.15)


def draw_control(ax: plt.Axes, control: pd.DataFrame, axis: XAxis, against: str) -> None:
    """Each method's negative control as a dotted line in the colour of the method's own line."""
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    for method, group in control.groupby("method", sort=False):
        group = group.assign(x=group["value"].map(axis.positions)).sort_values("x")
        label = METHOD_LABELS.get(str(method), str(method))
        ax.plot(group["x"], group["mean"], linestyle=":", marker=".", color=colours.get(label), label=f"{label}, control ({against})")


def plot_relevance(df: pd.DataFrame, column: str, values: list[object], parameter: str, title: str, path: Path) -> pd.DataFrame:
    """Mean ± 1 SD (see report/bands.py), line + band; on the unweighted plot, each method's negative
    control as a dotted line. Returns the plotted numbers."""
    stats = relevance_stats(df, column)
    axis = x_axis(parameter, values)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    draw_relevance(ax, stats, axis)
    note = relevance_band_note(stats["method"])
    if column == "percentage" and control_organisms(df):
        draw_control(ax, control_stats(df), axis, ", ".join(control_organisms(df)))
        note = f"{note}\n{CONTROL_NOTE}"
    ylabel = "relevant tokens, weighted (%)" if column == "weighted_percentage" else "relevant tokens (%)"
    _finish(fig, ax, axis, (0, 100), ylabel, title, note, path)
    return stats


def plot_agent(df: pd.DataFrame, values: list[object], parameter: str, title: str, path: Path) -> pd.DataFrame:
    """Agent score (1–5) per value, mean ± 1 SD; returns the plotted numbers, the blackbox baseline included.

    Where the swept value is the finetuned model itself (mix-ratio's variants) the blackbox baseline
    has one point per variant and is drawn as its own dashed curve; elsewhere the finetuned model is
    the same for every value, so its one baseline per seed is a horizontal dashed band.
    """
    axis = x_axis(parameter, values)
    stats = band_stats(df, ["method", "value"], "score")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    draw_agent(ax, stats, axis)
    _finish(fig, ax, axis, (0.8, 5.2), "agent score (1–5)", title, AGENT_BAND_NOTE, path)
    return stats
