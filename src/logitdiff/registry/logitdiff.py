"""LogitDiff TopK: counters of the top-K logit differences, ranked into orderings; stored as
orderings.json + counters.safetensors in logitdiff/S<S>_T<T>_K<K>[_nobos]/.

Pass memory per (S, T) slot: two [V, number of K's] int64 histograms and two [V] vectors, whatever S.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from logitdiff.core.atomic import save_tensors
from logitdiff.core.cell import Cell
from logitdiff.engine.limits import check_top_k
from logitdiff.methods.logitdiff import ORDERINGS, OrderingEntry, orderings
from logitdiff.registry.spec import GRADED_TOKENS, MethodSpec, RunChoice, Tokens
from logitdiff.results.list_ids import MAIN_ORDERING
from logitdiff.results.method_io import as_stored, load_doc, save_doc, tensor_shapes
from logitdiff.results.store import ResultsStore

if TYPE_CHECKING:
    from logitdiff.agent.views import AgentView
    from logitdiff.engine.models import ModelPair
    from logitdiff.engine.requests import Request
    from logitdiff.engine.stats import LogitDiffCounters



class OrderingsFile(BaseModel):
    samples: int
    positions_per_text: int
    top_k: int
    positions: int
    drop_bos: bool
    orderings: dict[str, list[OrderingEntry]]


def orderings_path(store: ResultsStore, cell: Cell) -> Path:
    return store.method_dir(cell) / "orderings.json"


def counters_path(store: ResultsStore, cell: Cell) -> Path:
    return store.method_dir(cell) / "counters.safetensors"


def save_logitdiff(store: ResultsStore, cell: Cell, counters: LogitDiffCounters, ranked: dict[str, list[OrderingEntry]]) -> None:
    save_tensors(counters_path(store, cell), counters.tensors())
    doc = OrderingsFile(
        samples=counters.samples,
        positions_per_text=counters.positions_per_text,
        top_k=counters.top_k,
        positions=counters.positions,
        drop_bos=cell.drop_bos,
        orderings=ranked,
    )
    save_doc(orderings_path(store, cell), cell, doc)


def _load_orderings_file(store: ResultsStore, cell: Cell) -> OrderingsFile:
    path = orderings_path(store, cell)
    doc = load_doc(path, OrderingsFile, "orderings")
    missing = [name for name in ORDERINGS if name not in doc.orderings]
    if missing:
        raise ValueError(f"orderings file {path} lacks {', '.join(missing)}")
    return doc


def load_orderings(store: ResultsStore, cell: Cell) -> dict[str, list[OrderingEntry]]:
    return _load_orderings_file(store, cell).orderings


class LogitDiffSpec(MethodSpec):
    method = "logitdiff"
    readout = "lens"
    label = "logitdiff"
    display = "LogitDiff TopK"
    every_list_a_point = False
    readout_in_records = False
    points = "LogitDiff one per seed"

    def selected(self, choice: RunChoice) -> bool:
        return True  # its two orderings come from the same counters: always both

    def folder(self, cell: Cell) -> str:
        return f"logitdiff/S{cell.samples}_T{cell.positions}_K{cell.top_k}{'_nobos' if cell.drop_bos else ''}"

    def key(self, cell: Cell) -> tuple[object, ...]:
        return (cell.samples, cell.positions, cell.top_k)

    def result_file(self, store: ResultsStore, cell: Cell) -> Path:
        return orderings_path(store, cell)

    def check_cell(self, cell: Cell, vocab: int | None, model: str) -> None:
        if vocab is not None:
            check_top_k(cell.top_k, vocab, model, f"; cell {cell.label()}")

    def requests(self, cell: Cell) -> list[Request]:
        from logitdiff.engine.requests import TopKCountsRequest

        return [TopKCountsRequest(cell.samples, cell.positions, cell.top_k)]

    def save(self, store: ResultsStore, cell: Cell, results: Mapping[Request, object], pair: ModelPair) -> None:
        from logitdiff.engine.stats import LogitDiffCounters

        counters = results[self.requests(cell)[0]]
        assert isinstance(counters, LogitDiffCounters)
        save_logitdiff(store, cell, counters, orderings(counters, pair.tokenizer, cell.top_k))

    def check_stored(self, store: ResultsStore, cell: Cell, first_position: int) -> None:
        from logitdiff.engine.stats import COUNTERS

        doc = _load_orderings_file(store, cell)
        made = (doc.samples, doc.positions_per_text, doc.top_k)
        if made != (cell.samples, cell.positions, cell.top_k):
            raise ValueError(f"orderings file {orderings_path(store, cell)} is for (S, T, K) = {made}, not {(cell.samples, cell.positions, cell.top_k)}")
        tensor_shapes(counters_path(store, cell), as_stored(COUNTERS))

    def list_count(self, cell: Cell) -> int:
        return len(ORDERINGS)

    def tokens(self, store: ResultsStore, cell: Cell, judge_id: str) -> Tokens:
        """The first 20 entries of each ordering (weights: the ordering's values)."""
        return {name: [(e.token, e.value) for e in entries[:GRADED_TOKENS]] for name, entries in load_orderings(store, cell).items()}

    def agent_view(self, store: ResultsStore, cell: Cell, judge_id: str) -> AgentView:
        from logitdiff.agent.views import logitdiff_view

        return logitdiff_view(self.tokens(store, cell, judge_id)[MAIN_ORDERING], samples=cell.samples, ordering=MAIN_ORDERING)
