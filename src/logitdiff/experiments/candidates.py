"""Turn a cell's stored method output into the token lists that are graded and shown to the agent.

LogitDiff: the first 20 entries of each ordering (weights = ordering values). ADL: per position
0–4, the top 20 positive logit-lens tokens of δ (weights = lens probabilities); each is its own list.
With --drop-bos on a model with a BOS, position 0 has no mean, so the five lists are positions 1–5.
"""

from __future__ import annotations

from logitdiff.experiments.grid import Cell
from logitdiff.judge.relevance import Candidate, CandidateList
from logitdiff.results.method_io import load_adl_lens, load_orderings
from logitdiff.results.store import ResultsStore

TOP_N = 20
ADL_LISTS = 5  # the first five positions that have a mean
_ADL_PREFIX = "adl_pos"


def adl_list_id(position: int) -> str:
    return f"{_ADL_PREFIX}{position}"


def list_position(list_id: str) -> int | None:
    """The ADL position a list id stands for, None for LogitDiff orderings."""
    return int(list_id.removeprefix(_ADL_PREFIX)) if list_id.startswith(_ADL_PREFIX) else None


def method_tokens(store: ResultsStore, cell: Cell) -> dict[str, list[tuple[str, float]]]:
    """list id -> [(decoded token, weight)] in the method's order, TOP_N long."""
    if cell.method == "logitdiff":
        return {name: [(e.token, e.value) for e in entries[:TOP_N]] for name, entries in load_orderings(store, cell).items()}
    lens = load_adl_lens(store, cell)
    return {
        adl_list_id(p.position): list(zip(p.positive.tokens[:TOP_N], p.positive.probs[:TOP_N], strict=True))
        for p in lens.delta[:ADL_LISTS]
    }


def candidate_lists(store: ResultsStore, cell: Cell) -> list[CandidateList]:
    return [
        CandidateList(list_id=list_id, candidates=[Candidate(token=t, weight=w) for t, w in tokens])
        for list_id, tokens in method_tokens(store, cell).items()
    ]
