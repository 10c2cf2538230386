"""Measuring the offline judge against hand labels: precision/recall, the max-F1 threshold, and the
leave-one-organism-out estimate (threshold chosen on the other organisms) as the honest number."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.offline import OfflineJudge, Verdict

THRESHOLD_GRID = tuple(float(t) for t in np.round(np.arange(0.05, 0.80, 0.01), 2))


@dataclass(frozen=True)
class LabelledToken:
    organism: str
    token: str
    relevant: bool


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    n: int


@dataclass(frozen=True)
class Calibration:
    threshold: float  # max-F1 over all labels
    at_threshold: Scores
    per_organism: dict[str, Scores]
    leave_one_organism_out: Scores


def load_labels(path: Path) -> list[LabelledToken]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [LabelledToken(r["organism"], r["token"], bool(r["relevant"])) for r in rows]


def evaluate(predicted: Sequence[bool], truth: Sequence[bool]) -> Scores:
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    fn = sum(t and not p for p, t in zip(predicted, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, tp, fp, fn, len(truth))


def _predict(verdicts: Sequence[Verdict], threshold: float) -> list[bool]:
    return [v.label(threshold) == "RELEVANT" for v in verdicts]


def best_threshold(verdicts: Sequence[Verdict], truth: Sequence[bool]) -> float:
    """Max F1; ties go to the higher threshold (fewer false positives, as the judge rules ask)."""
    return max(reversed(THRESHOLD_GRID), key=lambda t: evaluate(_predict(verdicts, t), truth).f1)


def calibrate(judge: OfflineJudge, labels: Sequence[LabelledToken], organisms: Mapping[str, OrganismConfig]) -> Calibration:
    names = sorted({lab.organism for lab in labels})
    verdicts: dict[str, list[Verdict]] = {}
    truth: dict[str, list[bool]] = {}
    for name in names:
        rows = [lab for lab in labels if lab.organism == name]
        verdicts[name] = judge.verdicts(organisms[name].description, [r.token for r in rows])
        truth[name] = [r.relevant for r in rows]
    all_v = [v for n in names for v in verdicts[n]]
    all_t = [t for n in names for t in truth[n]]
    threshold = best_threshold(all_v, all_t)
    held_out_pred: list[bool] = []
    held_out_truth: list[bool] = []
    for name in names:
        others_v = [v for n in names if n != name for v in verdicts[n]]
        others_t = [t for n in names if n != name for t in truth[n]]
        held_out_pred += _predict(verdicts[name], best_threshold(others_v, others_t))
        held_out_truth += truth[name]
    return Calibration(
        threshold=threshold,
        at_threshold=evaluate(_predict(all_v, threshold), all_t),
        per_organism={n: evaluate(_predict(verdicts[n], threshold), truth[n]) for n in names},
        leave_one_organism_out=evaluate(held_out_pred, held_out_truth),
    )
