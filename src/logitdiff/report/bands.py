"""The numbers a plot's line and band show: which records are points, their mean and SD.

Defined once so the plots, their footnotes and the notebook's tables cannot disagree. The choices
follow the reference's figures, so ours can be compared with the paper's: the SD is the population
SD (ddof=0), and each ADL position 0–4 of each seed is its own point (5 positions × seeds), while
LogitDiff has one point per seed (its main ordering).
"""

from __future__ import annotations

import pandas as pd

from logitdiff.report.collect import MAIN_ORDERING

SD_DDOF = 0

RELEVANCE_BAND_NOTE = (
    "line: mean; band: ±1 population SD (ddof=0) over the points: "
    "LogitDiff one per seed, ADL one per seed × position 0–4"
)
CONTROL_COLUMN = "control_percentage"
CONTROL_NOTE = "dotted: negative control, the same lists graded against another organism's description"
AGENT_BAND_NOTE = "line: mean; band: ±1 population SD (ddof=0) over seeds × agent runs × grader runs"


def method_series(df: pd.DataFrame) -> pd.Series:
    """The plotted method of each row: 'logitdiff', 'adl' (logit lens) or 'adl-patchscope'."""
    readout = df["readout"] if "readout" in df else pd.Series(None, index=df.index, dtype=object)
    patched = (df["method"] == "adl") & readout.notna() & (readout != "lens")
    return df["method"].where(~patched, df["method"] + "-" + readout.astype(str))


def relevance_points(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """The graded lists that are plotted points: the main LogitDiff ordering and every ADL position.
    `method` names the ADL readout: 'adl' (logit lens) or 'adl-patchscope', one line each."""
    ok = df[df["failed"].isna() & df[column].notna()]
    ok = ok[(ok["method"] == "adl") | (ok["ordering"] == MAIN_ORDERING)]
    return ok.assign(method=method_series(ok))


def band_stats(points: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """Mean, population SD and number of points per group, one row per group (groups in first-seen order)."""
    grouped = points.groupby(keys, sort=False)[column]
    stats = grouped.agg(["mean", "count"])
    stats["std"] = grouped.std(ddof=SD_DDOF)
    return stats[["mean", "std", "count"]].reset_index()


def relevance_stats(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (method, value): the relevance line (mean, in %) and band (SD) the plots draw."""
    return band_stats(relevance_points(df, column), ["method", "value"], column)


def control_organisms(df: pd.DataFrame) -> list[str]:
    """The organisms whose descriptions the negative control graded against (none for results without one)."""
    if CONTROL_COLUMN not in df or "control_organism" not in df:
        return []
    return [str(o) for o in dict.fromkeys(df.loc[df[CONTROL_COLUMN].notna(), "control_organism"].dropna())]


def control_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, value): the negative control's line, over the same points as `relevance_stats`."""
    if not control_organisms(df):
        return pd.DataFrame(columns=["method", "value", "mean", "std", "count"])
    return relevance_stats(df, CONTROL_COLUMN)
