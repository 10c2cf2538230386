"""LogitDiff NMF topics: the sparse (position × token) matrix of the top-K positive logit differences,
gathered in the pass and factorised into topics of tokens the finetune promotes together; each topic's
tokens by weight are one ordering `topic_<i>`. Stored in logitdiff/S<S>_T<T>_K<K>[_nobos]_nmf[...]/
as nmf.json.

Pass memory per cell: 12 bytes per kept (position, token) entry, at most 12·S·T·K bytes
(S=1000, T=30: 36 MB at K=100, 1.8 GB at K=5000), plus a vocabulary-sized column map.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.engine.record import RequestRecord
from logitdiff.methods.nmf import MODES, NmfOptions, TopKMatrix, fit_topics
from logitdiff.registry.logitdiff import LogitDiffSpec
from logitdiff.registry.spec import GRADED_TOKENS, MethodSpec, RunChoice, Tokens
from logitdiff.results.method_io import load_doc, save_doc
from logitdiff.results.store import ResultsStore

if TYPE_CHECKING:
    import torch

    from logitdiff.agent.views import AgentView
    from logitdiff.engine.accumulators import TopKCodes
    from logitdiff.engine.models import ModelPair
    from logitdiff.engine.requests import Accumulator, Request

ORDERING = "nmf"  # its name in --orderings
_DEFAULTS = NmfOptions()


class TopKMatrixAccumulator:
    """Appends each counted position's top-K positive ids and their d as one row of the matrix."""

    layers: frozenset[int] = frozenset()

    def __init__(self, top_k: int, mode: str) -> None:
        self.top_k = top_k
        self.matrix = TopKMatrix(mode)

    def add_residuals(self, base: dict[int, torch.Tensor], ft: dict[int, torch.Tensor]) -> None:
        raise AssertionError("reads no residuals")

    def add_logits(self, d: torch.Tensor, pos_codes: torch.Tensor, neg_codes: torch.Tensor, codes: TopKCodes) -> None:
        # Every position of the slot is ranked at least K deep, so the first K codes are its top K.
        ids = pos_codes[:, : self.top_k] // len(codes.ks)
        self.matrix.add(ids, d.gather(1, ids))


@dataclass(frozen=True)
class TopKMatrixRequest:
    samples: int
    positions: int
    top_k: int
    mode: str

    @property
    def depth(self) -> int:
        return self.top_k

    def validate(self, vocab: int, model_name: str) -> None:
        from logitdiff.engine.requests import check_top_k_request  # torch: only once a pass runs

        check_top_k_request("NMF topics need", self.samples, self.positions, self.top_k, vocab, model_name)

    def accumulator_key(self, num_layers: int) -> Hashable:
        return ("top-k matrix", self.top_k, self.mode)

    def new_accumulator(self, num_layers: int, hidden: int, device: torch.device, first_position: int) -> TopKMatrixAccumulator:
        return TopKMatrixAccumulator(self.top_k, self.mode)

    def read(self, acc: Accumulator, num_layers: int) -> TopKMatrix:
        assert isinstance(acc, TopKMatrixAccumulator)
        return acc.matrix

    def record(self, num_layers: int) -> RequestRecord:
        return RequestRecord(method="logitdiff-nmf", samples=self.samples, positions=self.positions, top_k=self.top_k)


class TopicEntry(BaseModel):
    token_id: int
    token: str  # tokenizer.decode([token_id])
    weight: float  # the token's weight in the topic (a column of W)


class NmfTopic(BaseModel):
    index: int
    mass: float  # ΣH[:, t]·ΣW[:, t]
    prevalence: float  # share of positions whose strongest topic this is
    concentration: float  # 1 − entropy of the topic's token weights / log(#tokens)
    entries: list[TopicEntry]


class NmfFile(BaseModel):
    samples: int
    positions_per_text: int
    top_k: int
    drop_bos: bool
    topics_requested: int
    mode: str
    orthogonality: float
    rows: int  # positions factorised
    columns: int  # tokens that were ever in a top-K positive set
    topics: list[NmfTopic]


def options_of(cell: Cell) -> NmfOptions:
    """The cell's NMF options; its seed starts the factorisation (each seed is its own sample)."""
    given = dict(cell.method_options)
    return NmfOptions(topics=int(given.get("topics", _DEFAULTS.topics)), mode=str(given.get("mode", _DEFAULTS.mode)),  # type: ignore[arg-type]
                      orthogonality=float(given.get("orthogonality", _DEFAULTS.orthogonality)), seed=cell.seed)


def nmf_path(store: ResultsStore, cell: Cell) -> Path:
    return store.method_dir(cell) / "nmf.json"


def load_nmf(store: ResultsStore, cell: Cell) -> NmfFile:
    return load_doc(nmf_path(store, cell), NmfFile, "NMF topics")


class NmfSpec(MethodSpec):
    method = "logitdiff"
    readout = ORDERING
    label = "logitdiff-nmf"
    display = "LogitDiff NMF topics"
    every_list_a_point = True  # each topic is a point of the relevance plots
    readout_in_records = True
    points = "NMF topics one per seed × topic"

    def selected(self, choice: RunChoice) -> bool:
        return ORDERING in choice.orderings

    def cell_options(self, choice: RunChoice) -> tuple[tuple[str, str | int | float], ...]:
        """The options that differ from the defaults (a default cell names none)."""
        given = {"topics": choice.nmf_topics, "mode": choice.nmf_mode, "orthogonality": choice.nmf_orthogonality}
        return tuple((k, v) for k, v in given.items() if v != getattr(_DEFAULTS, k))

    def folder(self, cell: Cell) -> str:
        opts = options_of(cell)
        parts = f"_nmf{opts.topics}" + ("_binary" if opts.mode != _DEFAULTS.mode else "") + (f"_orth{opts.orthogonality:g}" if opts.orthogonality else "")
        return LogitDiffSpec().folder(cell) + parts  # beside the counters' cell it shares a pass with

    def key(self, cell: Cell) -> tuple[object, ...]:
        opts = options_of(cell)
        return (cell.samples, cell.positions, cell.top_k, opts.topics, opts.mode, opts.orthogonality)

    def result_file(self, store: ResultsStore, cell: Cell) -> Path:
        return nmf_path(store, cell)

    def check_cell(self, cell: Cell, vocab: int | None, model: str) -> None:
        opts = options_of(cell)
        if opts.mode not in MODES:
            raise UserError(f"--nmf-mode must be one of {', '.join(MODES)}, got {opts.mode!r}")
        if opts.topics < 1 or opts.orthogonality < 0:
            raise UserError(f"--nmf-topics must be ≥ 1 and --nmf-orthogonality ≥ 0; cell {cell.label()}")
        LogitDiffSpec().check_cell(cell, vocab, model)  # K within the vocabulary, as for its counters

    def requests(self, cell: Cell) -> list[Request]:
        return [TopKMatrixRequest(cell.samples, cell.positions, cell.top_k, options_of(cell).mode)]

    def save(self, store: ResultsStore, cell: Cell, results: Mapping[Request, object], pair: ModelPair) -> None:
        matrix = results[self.requests(cell)[0]]
        assert isinstance(matrix, TopKMatrix)
        opts = options_of(cell)
        v, column_ids = matrix.matrix()
        try:
            topics = fit_topics(v, column_ids, opts)
        except ValueError as exc:  # e.g. fewer distinct tokens than topics: the cell fails, the run goes on
            raise UserError(f"NMF topics of {cell.label()}: {exc}") from exc
        decode = pair.tokenizer.decode
        doc = NmfFile(
            samples=cell.samples, positions_per_text=cell.positions, top_k=cell.top_k, drop_bos=cell.drop_bos,
            topics_requested=opts.topics, mode=opts.mode, orthogonality=opts.orthogonality, rows=v.shape[0], columns=v.shape[1],
            topics=[NmfTopic(index=t.index, mass=t.mass, prevalence=t.prevalence, concentration=t.concentration,
                             entries=[TopicEntry(token_id=i, token=decode([i]), weight=w) for i, w in zip(t.token_ids, t.weights, strict=True)])
                    for t in topics],
        )  # fmt: skip
        save_doc(nmf_path(store, cell), cell, doc)

    def check_stored(self, store: ResultsStore, cell: Cell, first_position: int) -> None:
        doc = load_nmf(store, cell)
        opts = options_of(cell)
        made = (doc.samples, doc.positions_per_text, doc.top_k, doc.topics_requested, doc.mode, doc.orthogonality)
        wanted = (cell.samples, cell.positions, cell.top_k, opts.topics, opts.mode, opts.orthogonality)
        if made != wanted or len(doc.topics) != opts.topics:
            raise ValueError(f"NMF file {nmf_path(store, cell)} is for (S, T, K, topics, mode, orthogonality) = {made}, not {wanted}")

    def list_count(self, cell: Cell) -> int:
        return options_of(cell).topics

    def tokens(self, store: ResultsStore, cell: Cell, judge_id: str) -> Tokens:
        """Per topic, its 20 heaviest tokens (weights: topic weights)."""
        return {f"topic_{t.index}": [(e.token, e.weight) for e in t.entries[:GRADED_TOKENS]] for t in load_nmf(store, cell).topics}

    def agent_view(self, store: ResultsStore, cell: Cell, judge_id: str) -> AgentView:
        from logitdiff.agent.views import topics_view

        return topics_view(list(self.tokens(store, cell, judge_id).values()), samples=cell.samples)
