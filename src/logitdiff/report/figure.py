"""The paper's combined figure for the mix-ratio experiment: token relevance of both methods (left)
and the agent score (right) against the mix ratio, on one numeric mix-ratio axis, from stored results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from logitdiff.report.axis import x_axis
from logitdiff.report.bands import AGENT_BAND_NOTE, band_stats, relevance_band_note, relevance_stats
from logitdiff.report.plots import draw_agent, draw_relevance, plt, save_figure, setup_axes

FIGURE_NAME = "mix_ratio_figure.png"


@dataclass
class FigureNumbers:
    relevance: pd.DataFrame  # relevance_stats of 'percentage'
    agent: pd.DataFrame  # band_stats of 'score' (empty without agent results)


def plot_mix_ratio_figure(relevance: pd.DataFrame, agent: pd.DataFrame, values: list[object], title: str, credits: str, path: Path) -> FigureNumbers:
    """Draw the figure to `path`; returns the numbers it draws (the same as the single plots')."""
    axis = x_axis("variant", values)
    rel = relevance_stats(relevance, "percentage") if len(relevance) else pd.DataFrame(columns=["method", "value", "mean", "std", "count"])
    scores = band_stats(agent, ["method", "value"], "score") if len(agent) else pd.DataFrame(columns=["method", "value", "mean", "std", "count"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    draw_relevance(left, rel, axis)
    left.set_ylim(0, 100)
    left.set_ylabel("relevant tokens (%)")
    left.set_title("token relevance", fontsize=9)
    draw_agent(right, scores, axis)
    right.set_ylim(0.8, 5.2)
    right.set_ylabel("agent score (1–5)")
    right.set_title("agent score" if len(scores) else "agent score: none stored (run with --mode full)", fontsize=9)
    for ax in (left, right):
        setup_axes(ax, axis)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, f"relevance {relevance_band_note(rel['method'])}\nagent {AGENT_BAND_NOTE}\n{credits}", path)
    return FigureNumbers(rel, scores)
