"""ADL: per-position means of the residual difference δ at one layer, read through the logit lens or
a patchscope; stored in adl/S<S>_T<T>_L<r>[_nobos][_patchscope]/ as vectors.safetensors,
drill_lens.json (δ's lens at every position and a few layers, for the agent) and the readout's file.

Pass memory per (S, T) slot and layer read: three [T, H] float64 sums, whatever S.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from logitdiff.core.atomic import read_json, save_tensors, write_json
from logitdiff.core.cell import Cell
from logitdiff.core.names import slug
from logitdiff.engine.limits import check_adl_positions
from logitdiff.registry.spec import GRADED_TOKENS, MethodSpec, RunChoice, Tokens
from logitdiff.results.list_ids import ADL_LISTS, adl_list_id, list_position
from logitdiff.results.method_io import as_stored, load_doc, save_doc, tensor_shapes
from logitdiff.results.store import ResultsStore

# The ADL modules need torch; they are imported where they are used, so the registry itself loads
# without it (`--check` asks every cell's spec before torch may load).
if TYPE_CHECKING:
    from logitdiff.agent.views import AgentView
    from logitdiff.engine.models import ModelPair
    from logitdiff.engine.requests import Request
    from logitdiff.engine.stats import AdlStats
    from logitdiff.judge.scale_choice import ScaleChoice
    from logitdiff.methods.adl import AdlLens, DrillLens
    from logitdiff.methods.patchscope import AdlPatchscope



def _choices() -> TypeAdapter[list[ScaleChoice]]:
    from logitdiff.judge.scale_choice import ScaleChoice

    return TypeAdapter(list[ScaleChoice])


def vectors_path(store: ResultsStore, cell: Cell) -> Path:
    return store.method_dir(cell) / "vectors.safetensors"


def drill_lens_path(store: ResultsStore, cell: Cell) -> Path:
    """δ's logit lens at every position and several layers, read by the ADL agent's drill-down tool."""
    return store.method_dir(cell) / "drill_lens.json"


def scale_choice_path(store: ResultsStore, cell: Cell, judge_id: str) -> Path:
    """The patchscope scale each position is read at, as chosen by `judge_id`."""
    return store.method_dir(cell) / "scale_choice" / f"{slug(judge_id)}.json"


def save_scale_choices(store: ResultsStore, cell: Cell, judge_id: str, choices: list[ScaleChoice]) -> None:
    write_json(scale_choice_path(store, cell, judge_id), _choices().dump_python(choices, mode="json"))


def load_scale_choices(store: ResultsStore, cell: Cell, judge_id: str) -> list[ScaleChoice]:
    path = scale_choice_path(store, cell, judge_id)
    try:
        return _choices().validate_python(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"malformed scale choice file {path}: {exc}") from exc


def load_drill_lens(store: ResultsStore, cell: Cell) -> DrillLens:
    from logitdiff.methods.adl import DrillLens

    return load_doc(drill_lens_path(store, cell), DrillLens, "ADL drill-down lens")


def _check_drill_lens(store: ResultsStore, cell: Cell, layer: int, first_position: int) -> None:
    """The drill-down file is the cell's: its S and T, every position, the cell's own block, only drill layers."""
    from logitdiff.methods.adl import drill_layers

    path = drill_lens_path(store, cell)
    drill = load_drill_lens(store, cell)
    if (drill.samples, drill.positions) != (cell.samples, cell.positions):
        raise ValueError(f"drill-down lens {path} is for (S, T) = {(drill.samples, drill.positions)}, not {(cell.samples, cell.positions)}")
    allowed = drill_layers(cell.adl_layer)
    stored = sorted(r for d in drill.layers for r in d.relative_layers)
    if layer not in {d.layer for d in drill.layers} or stored != allowed:
        raise ValueError(f"drill-down lens {path} holds layers {stored}, expected {allowed} (block {layer})")
    expected = list(range(first_position, cell.positions))
    for d in drill.layers:
        if d.positions != expected or len(d.top) != len(expected):
            raise ValueError(f"drill-down lens {path} holds positions {d.positions} at layer {d.layer}, expected {expected}")


class AdlSpec(MethodSpec):
    """What both readouts share: the pass's statistics, the vectors and the drill-down lens."""

    method = "adl"
    every_list_a_point = True
    readout_in_records = True
    points = "ADL one per seed × position 0–4"
    readout_file: ClassVar[str]
    # How the agent is told the readout decodes δ, what its scores are, and its key in the overview.
    decoding: ClassVar[str]
    scores: ClassVar[str]
    payload_key: ClassVar[str]

    def selected(self, choice: RunChoice) -> bool:
        return self.readout in choice.adl_readouts

    def folder(self, cell: Cell) -> str:
        readout = "" if self.readout == AdlLensSpec.readout else f"_{self.readout}"
        return f"adl/S{cell.samples}_T{cell.positions}_L{cell.adl_layer:g}{'_nobos' if cell.drop_bos else ''}{readout}"

    def key(self, cell: Cell) -> tuple[object, ...]:
        return (cell.samples, cell.positions, cell.adl_layer)

    def result_file(self, store: ResultsStore, cell: Cell) -> Path:
        return store.method_dir(cell) / self.readout_file

    def check_cell(self, cell: Cell, vocab: int | None, model: str) -> None:
        check_adl_positions(cell.positions, f"; cell {cell.label()}")

    def requests(self, cell: Cell) -> list[Request]:
        """The cell's own layer and the drill-down layers (one shared sum per block)."""
        from logitdiff.engine.requests import ResidualMeansRequest
        from logitdiff.methods.adl import drill_layers

        return [ResidualMeansRequest(cell.samples, cell.positions, r) for r in drill_layers(cell.adl_layer)]

    def save(self, store: ResultsStore, cell: Cell, results: Mapping[Request, object], pair: ModelPair) -> None:
        """δ and the means (vectors.safetensors), the drill-down lens, then the readout (last: its
        presence means the cell is complete)."""
        from logitdiff.engine.requests import ResidualMeansRequest
        from logitdiff.engine.stats import AdlStats
        from logitdiff.methods.adl import drill_lens

        every = [results[r] for r in self.requests(cell)]
        stats = results[ResidualMeansRequest(cell.samples, cell.positions, cell.adl_layer)]
        assert isinstance(stats, AdlStats) and all(isinstance(s, AdlStats) for s in every)
        self.write(store, cell, stats, self.read_out(stats, pair), drill_lens(every, pair))  # type: ignore[arg-type]

    def write(self, store: ResultsStore, cell: Cell, stats: AdlStats, readout: AdlLens | AdlPatchscope, drill: DrillLens) -> None:
        """δ and the means (vectors.safetensors), the drill-down lens, then the readout's file (last: its
        presence means the cell is complete)."""
        save_tensors(vectors_path(store, cell), stats.tensors())
        save_doc(drill_lens_path(store, cell), cell, drill)
        save_doc(self.result_file(store, cell), cell, readout)

    @abstractmethod
    def read_out(self, stats: AdlStats, pair: ModelPair) -> AdlLens | AdlPatchscope:
        """The readout's document of the cell's own layer."""

    @abstractmethod
    def document(self) -> type[AdlLens] | type[AdlPatchscope]:
        """The readout's stored document type."""

    def load(self, store: ResultsStore, cell: Cell) -> AdlLens | AdlPatchscope:
        doc: BaseModel = load_doc(self.result_file(store, cell), self.document(), f"ADL {self.readout}")
        return doc  # type: ignore[return-value]

    def check_stored(self, store: ResultsStore, cell: Cell, first_position: int) -> None:
        from logitdiff.engine.stats import ADL_VECTORS

        doc = self.load(store, cell)
        if (doc.samples, doc.positions, doc.relative_layer) != (cell.samples, cell.positions, cell.adl_layer):
            raise ValueError(f"ADL file {self.result_file(store, cell)} is for another cell (S={doc.samples}, T={doc.positions}, r={doc.relative_layer})")
        shape = next(iter(tensor_shapes(vectors_path(store, cell), as_stored(ADL_VECTORS)).values()))
        if shape[0] != cell.positions:
            raise ValueError(f"ADL vectors {vectors_path(store, cell)} hold {shape[0]} positions, expected {cell.positions}")
        _check_drill_lens(store, cell, doc.layer, first_position)

    def list_count(self, cell: Cell) -> int:
        return ADL_LISTS

    def agent_view(self, store: ResultsStore, cell: Cell, judge_id: str) -> AgentView:
        tokens = self.tokens(store, cell, judge_id)
        drill = load_drill_lens(store, cell)
        layer = next(d.layer for d in drill.layers if cell.adl_layer in d.relative_layers)  # the file was checked to hold it
        per_position = {list_position(list_id): toks for list_id, toks in tokens.items()}
        return self.agent_overview(per_position, samples=cell.samples, relative_layer=cell.adl_layer, layer=layer, drill=drill)  # type: ignore[arg-type]

    def agent_overview(self, per_position: dict[int, list[tuple[str, float]]], *, samples: int, relative_layer: float, layer: int,
                       drill: DrillLens) -> AgentView:
        """The overview of this readout's lists per position, with the lens drill-down tool."""
        from logitdiff.agent.views import adl_view

        return adl_view(per_position, samples=samples, relative_layer=relative_layer, layer=layer, drill=drill,
                        decoding=self.decoding, scores=self.scores, payload_key=self.payload_key)


class AdlLensSpec(AdlSpec):
    """δ through the finetuned model's logit lens; each of the first five positions with a mean is a list."""

    readout = "lens"
    label = "adl"
    display = "ADL logit lens"
    readout_file = "lens.json"
    decoding = "through the logit lens (the finetuned model's final norm and unembedding)"
    scores = "probabilities"
    payload_key = "logit_lens"

    def document(self) -> type[AdlLens]:
        from logitdiff.methods.adl import AdlLens

        return AdlLens

    def read_out(self, stats: AdlStats, pair: ModelPair) -> AdlLens:
        from logitdiff.methods.adl import logit_lens

        return logit_lens(stats, pair)

    def tokens(self, store: ResultsStore, cell: Cell, judge_id: str) -> Tokens:
        """Per position, the top 20 tokens δ promotes (weights: lens probabilities)."""
        from logitdiff.methods.adl import AdlLens

        lens = self.load(store, cell)
        assert isinstance(lens, AdlLens)
        return {
            adl_list_id(p.position): list(zip(p.positive.tokens[:GRADED_TOKENS], p.positive.probs[:GRADED_TOKENS], strict=True))
            for p in lens.delta[:ADL_LISTS]
        }


class AdlPatchscopeSpec(AdlSpec):
    """δ patched, rescaled, into identity prompts; each position is read at the scale the judge chose."""

    readout = "patchscope"
    label = "adl-patchscope"
    display = "ADL patchscope"
    chooses_scale = True
    readout_file = "patchscope.json"
    decoding = ("by patching it, rescaled, into identity prompts (\"man -> man ... ?\") and reading the next-token "
                "prediction (Patchscope), at the scale a judge found most coherent")
    scores = "patched probabilities"
    payload_key = "patch_scope"

    def document(self) -> type[AdlPatchscope]:
        from logitdiff.methods.patchscope import AdlPatchscope

        return AdlPatchscope

    def read_out(self, stats: AdlStats, pair: ModelPair) -> AdlPatchscope:
        from logitdiff.methods.patchscope import patchscope

        return patchscope(stats, pair, ADL_LISTS)

    def tokens(self, store: ResultsStore, cell: Cell, judge_id: str) -> Tokens:
        """Per position, the top 20 tokens at the scale `judge_id` chose (weights: patched probabilities)."""
        best = {c.position: c.best_scale for c in load_scale_choices(store, cell, judge_id)}
        from logitdiff.methods.patchscope import AdlPatchscope

        doc = self.load(store, cell)
        assert isinstance(doc, AdlPatchscope)
        out = {}
        for p in doc.delta[:ADL_LISTS]:
            at = next(s for s in p.scales if s.scale == best[p.position])
            out[adl_list_id(p.position)] = list(zip(at.tokens[:GRADED_TOKENS], at.probs[:GRADED_TOKENS], strict=True))
        return out
