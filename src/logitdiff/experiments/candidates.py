"""Turn a cell's stored method output into the token lists that are graded, with their judge sample identity.

Which tokens a method offers (and their weights) is its spec's to say (logitdiff.registry); with
--drop-bos on a model with a BOS, ADL position 0 has no mean, so its five lists are positions 1–5.
"""

from __future__ import annotations

from logitdiff.core.cell import Cell
from logitdiff.judge.relevance import JudgeSample
from logitdiff.registry import method_tokens
from logitdiff.results.graded import Candidate, CandidateList
from logitdiff.results.records import failed_lists
from logitdiff.results.store import ResultsStore


def candidate_lists(store: ResultsStore, cell: Cell, judge_id: str) -> list[CandidateList]:
    return [
        CandidateList(list_id=list_id, candidates=[Candidate(token=t, weight=w) for t, w in tokens])
        for list_id, tokens in method_tokens(store, cell, judge_id).items()
    ]


def judge_samples(store: ResultsStore, cell: Cell, judge_id: str, lists: list[CandidateList]) -> list[JudgeSample]:
    """The sample identity of each list's judge requests: the cell's own, so no answer is shared with
    another cell or seed; a list whose stored grading failed is asked afresh."""
    failed = failed_lists(store, cell, judge_id)
    cell_id = store.sample_id(store.method_dir(cell))
    return [JudgeSample(cell_id, refresh=lst.list_id in failed) for lst in lists]
