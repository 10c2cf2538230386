"""Token relevance grading: several orderings per list, labels mapped back, aggregated, scored.

Every (cell, list, ordering) is its own judge sample (`JudgeSample`): identical lists of two seeds or
cells are judged independently, as the reference does, and only a rerun of the same cell reuses the
cached answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


from logitdiff.config.schema import OrganismConfig
from logitdiff.core.progress import progress as progress_bar
from logitdiff.judge.tokens import normalize_token
from logitdiff.llm.client import LLMCallError
from logitdiff.results.graded import Agreement, Candidate, CandidateList, ControlGrades, GradedList, Label, OrderingResult, RelevanceMetrics

ROTATIONS = (0, 1, 2)
# A list with more UNKNOWN labels than this share is not a measurement (e.g. a weak judge that ignores
# the answer format): it is recorded as failed, not as a low relevance. The reference has no such rule
# (an UNKNOWN simply counts as not relevant), so there such a list would score near 0 %.
MAX_UNKNOWN_SHARE = 0.5


@dataclass(frozen=True)
class OrderingAnswer:
    """A judge's labels for tokens in the order they were shown, with its raw responses."""

    labels: list[Label]
    responses: list[str]  # every reply, in the order they were asked for
    used: int = 0  # the reply the labels come from


@dataclass(frozen=True)
class JudgeSample:
    """Whose judge requests these are. `cell`: the cell's identity (its results folder, which holds every
    parameter and the seed), so identical lists of other cells or seeds are asked afresh while a rerun of
    this cell finds its answers in the cache. `refresh`: the list failed before; its cached answers
    (e.g. an overloaded server's "Sorry") are not served again but replaced."""

    cell: str = ""
    refresh: bool = False

    def ordering(self, list_id: str, rotation: int) -> str:
        return f"{self.cell}|{list_id}|rotation{rotation}"


@dataclass(frozen=True)
class ControlTarget:
    """The negative control: another organism whose description every list is also graded against,
    with that organism's frequent training tokens (the context its own lists would be graded with)."""

    organism: OrganismConfig
    frequent: Sequence[str]


class Judge(Protocol):
    @property
    def id(self) -> str: ...

    async def label(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str], *,
                    sample: str = "", refresh: bool = False) -> OrderingAnswer: ...

    def usage_summary(self) -> str: ...


def unlabelled(graded: GradedList) -> str | None:
    """Why the judge's labels of this list are not a measurement, or None: more than half of the
    candidates got no label in any ordering, or one ordering left more than half unlabelled (under
    agreement `all` that ordering alone would make almost every candidate not relevant)."""
    n = len(graded.candidates)
    limit = MAX_UNKNOWN_SHARE * n
    unknown = sum(label == "UNKNOWN" for label in graded.labels)
    if unknown > limit:
        return f"judge could not label {unknown} of {n}"
    for ordering in graded.orderings:
        missing = sum(label == "UNKNOWN" for label in ordering.labels)
        if missing > limit:
            return f"judge could not label {missing} of {n} in ordering {ordering.rotation}"
    return None


def rotation_order(n: int, rotation: int) -> list[int]:
    return [(p + rotation) % n for p in range(n)] if n else []


def aggregate(votes: Sequence[Label], agreement: Agreement) -> Label:
    """UNKNOWN when no ordering labelled the token. Otherwise `all`: RELEVANT only if every ordering says
    so; an isolated UNKNOWN counts as not relevant (IRRELEVANT). `majority`: the label more than half of
    the labelled orderings give; a tie is UNKNOWN."""
    labelled = [v for v in votes if v != "UNKNOWN"]
    if not labelled:
        return "UNKNOWN"
    if agreement == "all":
        return "RELEVANT" if all(v == "RELEVANT" for v in votes) else "IRRELEVANT"
    for label in ("RELEVANT", "IRRELEVANT"):
        if sum(v == label for v in labelled) * 2 > len(labelled):
            return label  # type: ignore[return-value]
    return "UNKNOWN"


def relevant_share(labels: Sequence[Label]) -> float:
    """Percentage of RELEVANT labels (UNKNOWN counts as not relevant); 0 for an empty list."""
    return 100.0 * sum(lab == "RELEVANT" for lab in labels) / len(labels) if labels else 0.0


def relevance_metrics(candidates: Sequence[Candidate], labels: Sequence[Label], frequent: Sequence[str],
                      trivial_unavailable: str | None = None, control: ControlGrades | None = None) -> RelevanceMetrics:
    n = len(candidates)
    relevant = [c for c, lab in zip(candidates, labels, strict=True) if lab == "RELEVANT"]
    total_weight = sum(abs(c.weight) for c in candidates)
    frequent_norm = {normalize_token(t) for t in frequent}
    trivial = sum(normalize_token(c.token) in frequent_norm for c in candidates)
    return RelevanceMetrics(
        percentage=relevant_share(labels),
        weighted_percentage=100.0 * sum(abs(c.weight) for c in relevant) / total_weight if total_weight else 0.0,
        trivial_percentage=None if trivial_unavailable else (100.0 * trivial / n if n else 0.0),
        n_candidates=n,
        n_relevant=len(relevant),
        n_unknown=sum(lab == "UNKNOWN" for lab in labels),
        trivial_unavailable=trivial_unavailable,
        control_percentage=relevant_share(control.labels) if control is not None and not control.failed else None,
        control_organism=control.organism if control is not None else None,
    )


def shown_order(tokens: Sequence[str], rotation: int) -> list[str]:
    """The tokens as ordering `rotation` shows them to the judge."""
    return [tokens[i] for i in rotation_order(len(tokens), rotation)]


async def _grade_ordering(judge: Judge, organism: OrganismConfig, frequent: Sequence[str],
                          tokens: list[str], rotation: int, sample: str, refresh: bool) -> OrderingResult:
    order = rotation_order(len(tokens), rotation)
    answer = await judge.label(organism, frequent, shown_order(tokens, rotation), sample=sample, refresh=refresh)
    labels: list[Label] = ["UNKNOWN"] * len(tokens)
    for shown, original in enumerate(order):
        labels[original] = answer.labels[shown]
    return OrderingResult(rotation=rotation, order=order, labels=labels, responses=answer.responses, used_response=answer.used)


def _split(outcomes: Sequence[OrderingResult | BaseException]) -> tuple[list[OrderingResult], str | None]:
    """Finished orderings and the first request failure; anything but a request failure is raised."""
    for err in outcomes:
        if isinstance(err, BaseException) and not isinstance(err, LLMCallError):
            raise err  # user errors (missing key) and bugs must not be recorded as a graded failure
    errors = [str(o) for o in outcomes if isinstance(o, BaseException)]
    return [o for o in outcomes if isinstance(o, OrderingResult)], (errors[0] if errors else None)


def _aggregated(done: list[OrderingResult], n: int, agreement: Agreement) -> list[Label]:
    return [aggregate([o.labels[i] for o in done], agreement) for i in range(n)]


async def grade_list(judge: Judge, organism: OrganismConfig, frequent: Sequence[str], candidates: CandidateList,
                     agreement: Agreement = "all", trivial_unavailable: str | None = None,
                     sample: JudgeSample = JudgeSample(), control: ControlTarget | None = None) -> GradedList:
    """Grade one list in all orderings at once; a failed request marks the list failed with the reason.
    trivial_unavailable: why there are no frequent tokens (then trivial_percentage is None).
    control: also grade the list, the same way, against another organism's description; a failure there
    leaves the list's own grades standing (control_percentage is then None and control.failed says why)."""
    tokens = [c.token for c in candidates.candidates]
    jobs = [_grade_ordering(judge, organism, frequent, tokens, r, sample.ordering(candidates.list_id, r), sample.refresh) for r in ROTATIONS]
    if control is not None:
        control_list = f"{candidates.list_id}|control:{control.organism.name}"
        jobs += [_grade_ordering(judge, control.organism, control.frequent, tokens, r, sample.ordering(control_list, r), sample.refresh)
                 for r in ROTATIONS]
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    done, error = _split(outcomes[: len(ROTATIONS)])
    graded = GradedList(list_id=candidates.list_id, judge_id=judge.id, agreement=agreement,
                        candidates=candidates.candidates, orderings=done, labels=[], metrics=None)
    if control is not None:
        control_done, control_error = _split(outcomes[len(ROTATIONS):])
        graded.control = ControlGrades(organism=control.organism.name, orderings=control_done, failed=control_error,
                                       labels=[] if control_error else _aggregated(control_done, len(tokens), agreement))
        n_unknown = graded.control.labels.count("UNKNOWN")
        if not control_error and n_unknown > MAX_UNKNOWN_SHARE * len(tokens):
            graded.control.failed = f"judge could not label {n_unknown} of {len(tokens)}"
    if error:
        graded.failed = error
        return graded
    graded.labels = _aggregated(done, len(tokens), agreement)
    graded.metrics = relevance_metrics(candidates.candidates, graded.labels, frequent, trivial_unavailable, graded.control)
    graded.failed = unlabelled(graded)
    return graded


async def grade_lists(judge: Judge, organism: OrganismConfig, frequent: list[str], lists: Sequence[CandidateList],
                      agreement: Agreement = "all", progress: bool = True, trivial_unavailable: str | None = None,
                      samples: Sequence[JudgeSample] | None = None, control: ControlTarget | None = None) -> list[GradedList]:
    """Grade every list concurrently (the judge's client bounds the requests in flight); results in input
    order. `samples`: each list's sample identity (default: none, so equal lists share cached answers)."""
    samples = samples if samples is not None else [JudgeSample()] * len(lists)
    with progress_bar(len(lists), f"judge {judge.id}", "list", enabled=progress) as bar:
        async def one(cl: CandidateList, sample: JudgeSample) -> GradedList:
            graded = await grade_list(judge, organism, frequent, cl, agreement, trivial_unavailable, sample, control)
            bar.update(1)
            return graded

        return list(await asyncio.gather(*(one(cl, s) for cl, s in zip(lists, samples, strict=True))))
