"""Draw the experiment plots from collected DataFrames (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from logitdiff.report.bands import AGENT_BAND_NOTE, CONTROL_NOTE, RELEVANCE_BAND_NOTE, band_stats, control_organisms, control_stats, relevance_stats  # noqa: E402

METHOD_LABELS = {"logitdiff": "LogitDiff TopK", "adl": "ADL logit lens", "adl-patchscope": "ADL patchscope", "blackbox": "Blackbox agent"}
PARAMETER_LABELS = {"top_k": "K (top-K depth)", "positions": "T (positions per text)", "samples": "S (texts)", "variant": "organism variant"}


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
            ylim: tuple[float, float], ylabel: str, title: str, note: str, path: Path) -> None:
    _setup_axes(ax, parameter, values, categorical)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, note, fontsize=6.5, color="dimgray", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_relevance(df: pd.DataFrame, column: str, values: list[object], parameter: str, title: str, path: Path) -> pd.DataFrame:
    """Mean ± 1 SD (see report/bands.py), line + band; on the unweighted plot, each method's negative
    control as a dotted line of the same colour. Returns the plotted numbers."""
    stats = relevance_stats(df, column)
    control = control_stats(df) if column == "percentage" else control_stats(df.iloc[0:0])
    categorical = parameter == "variant"
    xs = _x_positions(values, categorical)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    against = ", ".join(control_organisms(df))
    for method, group in stats.groupby("method", sort=False):
        group = group.assign(x=group["value"].map(xs)).sort_values("x")
        mean, sd = group["mean"], group["std"]
        label = METHOD_LABELS.get(str(method), str(method))
        (line,) = ax.plot(group["x"], mean, marker="o", label=label)
        ax.fill_between(group["x"], (mean - sd).clip(0, 100), (mean + sd).clip(0, 100), alpha=0.2)
        ctrl = control[control["method"] == method]
        if len(ctrl):
            ctrl = ctrl.assign(x=ctrl["value"].map(xs)).sort_values("x")
            ax.plot(ctrl["x"], ctrl["mean"], linestyle=":", marker=".", color=line.get_color(), label=f"{label}, control ({against})")
    ylabel = "relevant tokens, weighted (%)" if column == "weighted_percentage" else "relevant tokens (%)"
    note = f"{RELEVANCE_BAND_NOTE}; {CONTROL_NOTE}" if len(control) else RELEVANCE_BAND_NOTE
    _finish(fig, ax, parameter, values, categorical, (0, 100), ylabel, title, note, path)
    return stats


def plot_agent(df: pd.DataFrame, values: list[object], parameter: str, title: str, path: Path) -> pd.DataFrame:
    """Agent score (1–5) per value, mean ± 1 SD; returns the plotted numbers, the blackbox baseline included.

    SPEC §6: where the swept value is the finetuned model itself (mix-ratio's variants) the blackbox
    baseline has one point per variant and is drawn as its own dashed curve; elsewhere the finetuned
    model is the same for every value, so its one baseline per seed is a horizontal dashed band.
    """
    categorical = parameter == "variant"
    xs = _x_positions(values, categorical)
    stats = band_stats(df, ["method", "value"], "score")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, group in stats[stats["method"] != "blackbox"].groupby("method", sort=False):
        group = group.assign(x=group["value"].map(xs)).sort_values("x")
        ax.plot(group["x"], group["mean"], marker="o", label=METHOD_LABELS.get(str(method), str(method)))
        ax.fill_between(group["x"], group["mean"] - group["std"], group["mean"] + group["std"], alpha=0.2)
    baseline = stats[stats["method"] == "blackbox"]
    if categorical and len(baseline):
        curve = baseline.assign(x=baseline["value"].map(xs)).sort_values("x")
        ax.plot(curve["x"], curve["mean"], linestyle="--", marker="s", color="gray", label=METHOD_LABELS["blackbox"])
        ax.fill_between(curve["x"], curve["mean"] - curve["std"], curve["mean"] + curve["std"], color="gray", alpha=0.15)
    elif len(baseline):
        # Run only at the first value (one row); the model it probes is the same at every value.
        mean, sd = float(baseline["mean"].iloc[0]), float(baseline["std"].iloc[0])
        ax.axhline(mean, linestyle="--", color="gray", label=f"{METHOD_LABELS['blackbox']} ({mean:.2f})")
        ax.axhspan(mean - sd, mean + sd, color="gray", alpha=0.15)
    _finish(fig, ax, parameter, values, categorical, (0.8, 5.2), "agent score (1–5)", title, AGENT_BAND_NOTE, path)
    return stats
