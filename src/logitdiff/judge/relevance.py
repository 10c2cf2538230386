"""Token relevance grading (SPEC §5): several orderings per list, labels mapped back, aggregated, scored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tqdm import tqdm

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.tokens import normalize_token
from logitdiff.llm.client import LLMCallError
from logitdiff.results.graded import Agreement, Candidate, CandidateList, ControlGrades, GradedList, Label, OrderingResult, RelevanceMetrics

ROTATIONS = (0, 1, 2)
# A list with more UNKNOWN labels than this share is not a measurement (e.g. a weak judge that ignores
# the answer format): it is recorded as failed, not as a low relevance.
MAX_UNKNOWN_SHARE = 0.5


@dataclass(frozen=True)
class OrderingAnswer:
    """A judge's labels for tokens in the order they were shown, with its raw responses."""

    labels: list[Label]
    responses: list[str]  # first answer, then the re-ask answer if one was needed


@dataclass(frozen=True)
class ControlTarget:
    """The negative control: another organism whose description every list is also graded against,
    with that organism's frequent training tokens (the context its own lists would be graded with)."""

    organism: OrganismConfig
    frequent: Sequence[str]


class Judge(Protocol):
    @property
    def id(self) -> str: ...

    async def label(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str]) -> OrderingAnswer: ...

    def usage_summary(self) -> str: ...


def mostly_unknown(metrics: RelevanceMetrics) -> bool:
    return metrics.n_unknown > MAX_UNKNOWN_SHARE * metrics.n_candidates


def rotation_order(n: int, rotation: int) -> list[int]:
    return [(p + rotation) % n for p in range(n)] if n else []


def aggregate(votes: Sequence[Label], agreement: Agreement) -> Label:
    """`all`: RELEVANT only if every ordering says so, IRRELEVANT if any says so, else UNKNOWN.
    `majority`: the label more than half of the orderings give, else UNKNOWN."""
    if agreement == "all":
        if votes and all(v == "RELEVANT" for v in votes):
            return "RELEVANT"
        return "IRRELEVANT" if "IRRELEVANT" in votes else "UNKNOWN"
    for label in ("RELEVANT", "IRRELEVANT"):
        if sum(v == label for v in votes) * 2 > len(votes):
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


async def _grade_ordering(judge: Judge, organism: OrganismConfig, frequent: Sequence[str],
                          tokens: list[str], rotation: int) -> OrderingResult:
    order = rotation_order(len(tokens), rotation)
    answer = await judge.label(organism, frequent, [tokens[i] for i in order])
    labels: list[Label] = ["UNKNOWN"] * len(tokens)
    for shown, original in enumerate(order):
        labels[original] = answer.labels[shown]
    return OrderingResult(rotation=rotation, order=order, labels=labels, responses=answer.responses)


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
                     control: ControlTarget | None = None) -> GradedList:
    """Grade one list in all orderings at once; a failed request marks the list failed with the reason.
    trivial_unavailable: why there are no frequent tokens (then trivial_percentage is None).
    control: also grade the list, the same way, against another organism's description; a failure there
    leaves the list's own grades standing (control_percentage is then None and control.failed says why)."""
    tokens = [c.token for c in candidates.candidates]
    jobs = [_grade_ordering(judge, organism, frequent, tokens, r) for r in ROTATIONS]
    if control is not None:
        jobs += [_grade_ordering(judge, control.organism, control.frequent, tokens, r) for r in ROTATIONS]
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
    if mostly_unknown(graded.metrics):
        graded.failed = f"judge could not label {graded.metrics.n_unknown} of {len(tokens)}"
    return graded


async def grade_lists(judge: Judge, organism: OrganismConfig, frequent: list[str], lists: Sequence[CandidateList],
                      agreement: Agreement = "all", progress: bool = True, trivial_unavailable: str | None = None,
                      control: ControlTarget | None = None) -> list[GradedList]:
    """Grade every list concurrently (the judge's client bounds the requests in flight); results in input order."""
    with tqdm(total=len(lists), desc=f"judge {judge.id}", unit="list", disable=not progress) as bar:
        async def one(cl: CandidateList) -> GradedList:
            graded = await grade_list(judge, organism, frequent, cl, agreement, trivial_unavailable, control)
            bar.update(1)
            return graded

        return list(await asyncio.gather(*(one(cl) for cl in lists)))
