"""Turn a cell's stored method output into the token lists that are graded and shown to the agent.

LogitDiff: the first 20 entries of each ordering (weights = ordering values). ADL: per position
0–4, the top 20 positive logit-lens tokens of δ (weights = lens probabilities), or with the patchscope
readout the top 20 tokens at the scale the judge chose for that position (weights = patched
probabilities); each position is its own list.
With --drop-bos on a model with a BOS, position 0 has no mean, so the five lists are positions 1–5.
"""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from logitdiff.core.atomic import read_json, write_json
from logitdiff.core.cell import Cell
from logitdiff.judge.relevance import JudgeSample
from logitdiff.judge.scale_choice import ScaleChoice
from logitdiff.results.graded import Candidate, CandidateList
from logitdiff.results.list_ids import ADL_LISTS, adl_list_id
from logitdiff.results.method_io import load_adl_lens, load_adl_patchscope, load_orderings
from logitdiff.results.records import failed_lists
from logitdiff.results.store import ResultsStore

TOP_N = 20

_CHOICES = TypeAdapter(list[ScaleChoice])


def save_scale_choices(store: ResultsStore, cell: Cell, judge_id: str, choices: list[ScaleChoice]) -> None:
    write_json(store.scale_choice(cell, judge_id), _CHOICES.dump_python(choices, mode="json"))


def load_scale_choices(store: ResultsStore, cell: Cell, judge_id: str) -> list[ScaleChoice]:
    path = store.scale_choice(cell, judge_id)
    try:
        return _CHOICES.validate_python(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"malformed scale choice file {path}: {exc}") from exc


def method_tokens(store: ResultsStore, cell: Cell, judge_id: str) -> dict[str, list[tuple[str, float]]]:
    """list id -> [(decoded token, weight)] in the method's order, TOP_N long. A patchscope cell is read
    at the scales `judge_id` chose (stored by the relevance stage)."""
    if cell.method == "logitdiff":
        return {name: [(e.token, e.value) for e in entries[:TOP_N]] for name, entries in load_orderings(store, cell).items()}
    if cell.readout == "patchscope":
        best = {c.position: c.best_scale for c in load_scale_choices(store, cell, judge_id)}
        out = {}
        for p in load_adl_patchscope(store, cell).delta[:ADL_LISTS]:
            at = next(s for s in p.scales if s.scale == best[p.position])
            out[adl_list_id(p.position)] = list(zip(at.tokens[:TOP_N], at.probs[:TOP_N], strict=True))
        return out
    lens = load_adl_lens(store, cell)
    return {
        adl_list_id(p.position): list(zip(p.positive.tokens[:TOP_N], p.positive.probs[:TOP_N], strict=True))
        for p in lens.delta[:ADL_LISTS]
    }


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
