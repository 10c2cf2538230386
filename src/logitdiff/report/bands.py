"""The numbers every view shows: which records are points, their mean and SD, and how they print.

Defined once so the plots, their footnotes, `logitdiff show`, `logitdiff report`, the JSON summaries
and the notebook's tables cannot disagree. The choices follow the reference's figures, so ours can be
compared with the paper's: the SD is the population SD (ddof=0), and each ADL position 0–4 of each
seed is its own point (5 positions × seeds), while LogitDiff has one point per seed (its main ordering).
Stored percentages are already in % (0–100): no view scales them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from logitdiff.core.cell import DEFAULT_READOUT
from logitdiff.registry import REGISTERED, spec_named
from logitdiff.results.list_ids import MAIN_ORDERING

SD_DDOF = 0



def relevance_band_note(labels: Iterable[str]) -> str:
    """How the relevance lines of these methods (method_series' values) are averaged, for a plot's footnote."""
    points = ", ".join(dict.fromkeys(spec_named(label).points for label in labels))
    return f"line: mean; band: ±1 population SD (ddof=0) over the points: {points}"


AGENT_BAND_NOTE = "line: mean; band: ±1 population SD (ddof=0) over seeds × agent runs × grader runs"
CONTROL_NOTE = "dotted: negative control, the same lists graded against another organism's description"

BLACKBOX = "blackbox"  # the agent rows of the baseline that sees no method output
# How every view names a plotted method (the keys are method_series' values): each method's display name.
METHOD_LABELS = {**{spec.label: spec.display for spec in REGISTERED}, BLACKBOX: "Blackbox agent"}
CONTROL_COLUMN = "control_percentage"  # the same list graded against another organism's description
RELEVANCE_COLUMNS = ("percentage", "weighted_percentage", "trivial_percentage", CONTROL_COLUMN)


def method_series(df: pd.DataFrame) -> pd.Series:
    """The plotted method of each row, as `Cell.method_label` names it: 'logitdiff', 'adl' (logit lens)
    or 'adl-patchscope'."""
    readout = df["readout"] if "readout" in df else pd.Series(None, index=df.index, dtype=object)
    named = readout.notna() & (readout != DEFAULT_READOUT)
    return df["method"].where(~named, df["method"] + "-" + readout.astype(str))


def plotted_lists(df: pd.DataFrame) -> pd.Series:
    """Which graded lists are points of the relevance plots: every list of a method whose lists all
    are (ADL: each position), else the main ordering (LogitDiff)."""
    every = method_series(df).map(lambda label: spec_named(str(label)).every_list_a_point)
    return every.astype(bool) | (df["ordering"] == MAIN_ORDERING)


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def list_name(position: object, ordering: object) -> str:
    """A graded list's name within its cell: 'position 3' (ADL) or the LogitDiff ordering."""
    return str(ordering) if pd.isna(position) else f"position {int(position)}"  # type: ignore[call-overload]


def relevance_points(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """The graded lists that are plotted points: the main LogitDiff ordering and every ADL position.
    `method` names the ADL readout: 'adl' (logit lens) or 'adl-patchscope', one line each."""
    if column not in df:  # records written before the column existed (e.g. the negative control)
        return df.iloc[0:0].assign(**{column: pd.Series(dtype=float)})
    ok = df[df["failed"].isna() & df[column].notna()]
    ok = ok[plotted_lists(ok)]
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
    """Per (method, value): the negative control's line, over the same kind of points as `relevance_stats`."""
    return relevance_stats(df, CONTROL_COLUMN)


def control_token_counts(df: pd.DataFrame) -> tuple[int, int]:
    """(tokens the control called relevant, tokens graded) over the plotted lists' controls: the judge's
    false-positive rate on the run, since no token of this finetune belongs to the control's domain."""
    points = relevance_points(df, CONTROL_COLUMN)
    labels = [t.get("control_label") for tokens in points.get("tokens", []) for t in tokens]
    return sum(label == "RELEVANT" for label in labels), len(labels)


def list_stats(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (method, list, value): mean and population SD over the seeds of one graded list (every
    LogitDiff ordering, every ADL position), as `logitdiff show` lists them."""
    if column not in df:
        df = df.assign(**{column: None})
    ok = df[df["failed"].isna() & df[column].notna()]
    ok = ok.assign(method=method_series(ok), list=[list_name(p, o) for p, o in zip(ok["position"], ok["ordering"], strict=True)])
    return band_stats(ok, ["method", "list", "value"], column)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value JSON writes as a number (5, not "5")."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def relevance_summary(df: pd.DataFrame) -> list[dict[str, object]]:
    """The plotted numbers of every metric, one record per (method, value): what
    token_relevance_summary.json holds and `logitdiff report` prints."""
    merged: dict[tuple[str, object], dict[str, object]] = {}
    for column in RELEVANCE_COLUMNS:
        for row in relevance_stats(df, column).itertuples(index=False):
            rec = merged.setdefault((str(row.method), row.value), {"method": row.method, "label": method_label(str(row.method)), "value": _plain(row.value)})
            rec[column] = {"mean": float(row.mean), "sd": float(row.std), "points": int(row.count)}
    return list(merged.values())


def agent_summary(df: pd.DataFrame) -> list[dict[str, object]]:
    """The plotted agent scores, one record per (method, value): what agent_summary.json holds."""
    return [
        {"method": row.method, "label": method_label(str(row.method)), "value": _plain(row.value),
         "score": {"mean": float(row.mean), "sd": float(row.std), "points": int(row.count)}}
        for row in band_stats(df, ["method", "value"], "score").itertuples(index=False)
    ]


def mean_sd(mean: float, sd: float, count: int, digits: int = 1) -> str:
    """'85.0 ± 2.5' (one point: '85.0'; no point: '–'): the one way every text view prints a band."""
    if count == 0 or math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if count > 1 else "")
