"""Save and load the method results of a cell (orderings, counters, ADL lens and vectors, pass record).

Paths come from ResultsStore only; every write is atomic. The readable JSON (orderings.json / lens.json)
is written last, so its presence means the cell's method result is complete. Loads raise ValueError on a
truncated or malformed file so the runner can redo the cell; `check_method_result` checks every file of a
cell that a later step or the user reads (loadable, the cell's shape) before the runner or `status` trusts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from pydantic import BaseModel, ValidationError

from logitdiff.core.atomic import read_json, save_tensors, write_json
from logitdiff.core.cell import Cell
from logitdiff.engine.record import PassRecord
from logitdiff.engine.stats import ADL_VECTORS, COUNTERS, AdlStats, LogitDiffCounters
from logitdiff.methods.adl import AdlLens, DrillLens, drill_layers
from logitdiff.methods.logitdiff import ORDERINGS, OrderingEntry
from logitdiff.methods.patchscope import AdlPatchscope
from logitdiff.results.store import ResultsStore


class OrderingsFile(BaseModel):
    samples: int
    positions_per_text: int
    top_k: int
    positions: int
    drop_bos: bool
    orderings: dict[str, list[OrderingEntry]]


_Doc = TypeVar("_Doc", bound=BaseModel)


def _save_doc(path: Path, cell: Cell, doc: BaseModel) -> None:
    """A readable method result: the cell it belongs to, then the document's fields."""
    write_json(path, {"cell": cell.model_dump(mode="json"), **doc.model_dump(mode="json")})


def _load_doc(path: Path, kind: type[_Doc], what: str) -> _Doc:
    raw = read_json(path)
    try:
        return kind.model_validate({k: v for k, v in raw.items() if k != "cell"})
    except (ValidationError, AttributeError) as exc:
        raise ValueError(f"malformed {what} file {path}: {exc}") from exc


def save_logitdiff(store: ResultsStore, cell: Cell, counters: LogitDiffCounters, orderings: dict[str, list[OrderingEntry]]) -> None:
    save_tensors(store.counters(cell), counters.tensors())
    doc = OrderingsFile(
        samples=counters.samples,
        positions_per_text=counters.positions_per_text,
        top_k=counters.top_k,
        positions=counters.positions,
        drop_bos=cell.drop_bos,
        orderings=orderings,
    )
    _save_doc(store.orderings(cell), cell, doc)


def _load_orderings_file(store: ResultsStore, cell: Cell) -> OrderingsFile:
    path = store.orderings(cell)
    doc = _load_doc(path, OrderingsFile, "orderings")
    missing = [name for name in ORDERINGS if name not in doc.orderings]
    if missing:
        raise ValueError(f"orderings file {path} lacks {', '.join(missing)}")
    return doc


def load_orderings(store: ResultsStore, cell: Cell) -> dict[str, list[OrderingEntry]]:
    return _load_orderings_file(store, cell).orderings


def save_adl(store: ResultsStore, cell: Cell, stats: AdlStats, readout: AdlLens | AdlPatchscope, drill: DrillLens) -> None:
    """δ and the means (vectors.safetensors), the drill-down lens, then the readout: lens.json or
    patchscope.json by the cell's readout (last: its presence means the cell is complete)."""
    save_tensors(store.adl_vectors(cell), stats.tensors())
    _save_doc(store.drill_lens(cell), cell, drill)
    _save_doc(store.adl_readout(cell), cell, readout)


def load_drill_lens(store: ResultsStore, cell: Cell) -> DrillLens:
    return _load_doc(store.drill_lens(cell), DrillLens, "ADL drill-down lens")


def _check_drill_lens(store: ResultsStore, cell: Cell, layer: int, first_position: int) -> None:
    """The drill-down file is the cell's: its S and T, every position, the cell's own block, only drill layers."""
    path = store.drill_lens(cell)
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


def load_adl_lens(store: ResultsStore, cell: Cell) -> AdlLens:
    return _load_doc(store.adl_readout(cell), AdlLens, "ADL lens")


def load_adl_patchscope(store: ResultsStore, cell: Cell) -> AdlPatchscope:
    return _load_doc(store.adl_readout(cell), AdlPatchscope, "ADL patchscope")


def save_pass_record(store: ResultsStore, cell: Cell, record: PassRecord) -> None:
    write_json(store.pass_record(cell), record.model_dump(mode="json"))


def load_pass_record(store: ResultsStore, cell: Cell) -> PassRecord:
    path = store.pass_record(cell)
    try:
        record = PassRecord.model_validate(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"malformed pass record {path}: {exc}") from exc
    if record.seed != cell.seed:
        raise ValueError(f"pass record {path} is for seed {record.seed}, not {cell.seed}")
    return record


_SAFETENSORS_DTYPE = {torch.int64: "I64", torch.float64: "F64", torch.float32: "F32"}


def _as_stored(declared: dict[str, tuple[torch.dtype, int]]) -> dict[str, tuple[str, int]]:
    """The engine's declaration of a result's tensors as safetensors names its dtypes."""
    return {name: (_SAFETENSORS_DTYPE[dtype], rank) for name, (dtype, rank) in declared.items()}


_COUNTERS = _as_stored(COUNTERS)
_ADL_VECTORS = _as_stored(ADL_VECTORS)


def tensor_shapes(path: Path, expected: dict[str, tuple[str, int]]) -> dict[str, list[int]]:
    """Shapes of a safetensors file's tensors after checking it opens (a truncated file does not) and
    holds exactly the expected names, dtypes and ranks, with one common shape."""
    from safetensors import safe_open

    if not path.is_file():
        raise ValueError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as fh:
            found = {name: (fh.get_slice(name).get_dtype(), fh.get_slice(name).get_shape()) for name in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types (and OSError) for unreadable files
        raise ValueError(f"unreadable tensor file {path}: {exc}") from exc
    if set(found) != set(expected):
        raise ValueError(f"tensor file {path} holds {sorted(found)}, expected {sorted(expected)}")
    for name, (dtype, shape) in found.items():
        if (dtype, len(shape)) != expected[name]:
            raise ValueError(f"tensor file {path}: {name} is {dtype} of rank {len(shape)}, expected {expected[name][0]} of rank {expected[name][1]}")
    shapes = {name: list(shape) for name, (_, shape) in found.items()}
    if len({tuple(s) for s in shapes.values()}) != 1:
        raise ValueError(f"tensor file {path}: tensors of different shapes {shapes}")
    return shapes


def check_method_result(store: ResultsStore, cell: Cell) -> None:
    """Raise ValueError unless every stored method file of the cell loads and has the cell's shape."""
    if cell.method == "logitdiff":
        doc = _load_orderings_file(store, cell)
        made = (doc.samples, doc.positions_per_text, doc.top_k)
        if made != (cell.samples, cell.positions, cell.top_k):
            raise ValueError(f"orderings file {store.orderings(cell)} is for (S, T, K) = {made}, not {(cell.samples, cell.positions, cell.top_k)}")
        tensor_shapes(store.counters(cell), _COUNTERS)
    else:
        doc: AdlLens | AdlPatchscope = load_adl_patchscope(store, cell) if cell.readout == "patchscope" else load_adl_lens(store, cell)
        if (doc.samples, doc.positions, doc.relative_layer) != (cell.samples, cell.positions, cell.adl_layer):
            raise ValueError(f"ADL file {store.method_result(cell)} is for another cell (S={doc.samples}, T={doc.positions}, r={doc.relative_layer})")
        shape = next(iter(tensor_shapes(store.adl_vectors(cell), _ADL_VECTORS).values()))
        if shape[0] != cell.positions:
            raise ValueError(f"ADL vectors {store.adl_vectors(cell)} hold {shape[0]} positions, expected {cell.positions}")
    record = load_pass_record(store, cell)
    if cell.method == "adl":
        _check_drill_lens(store, cell, doc.layer, record.first_counted_position)
