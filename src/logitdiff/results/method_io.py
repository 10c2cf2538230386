"""Save and load the method results of a cell (orderings, counters, ADL lens and vectors, pass record).

Paths come from ResultsStore only; every write is atomic. The readable JSON (orderings.json / lens.json)
is written last, so its presence means the cell's method result is complete. Loads raise ValueError on a
truncated or malformed file so the runner can redo the cell.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from logitdiff.engine.record import PassRecord
from logitdiff.engine.stats import AdlStats, LogitDiffCounters
from logitdiff.experiments.grid import Cell
from logitdiff.methods.adl import AdlLens
from logitdiff.methods.logitdiff import ORDERINGS, OrderingEntry
from logitdiff.results.atomic import read_json, save_tensors, write_json
from logitdiff.results.store import ResultsStore


class OrderingsFile(BaseModel):
    samples: int
    positions_per_text: int
    top_k: int
    positions: int
    drop_bos: bool
    orderings: dict[str, list[OrderingEntry]]


def _cell_params(cell: Cell) -> dict[str, object]:
    return cell.model_dump(mode="json")


def save_logitdiff(store: ResultsStore, cell: Cell, counters: LogitDiffCounters, orderings: dict[str, list[OrderingEntry]]) -> None:
    save_tensors(store.counters(cell), counters.tensors())
    doc = OrderingsFile(
        samples=counters.samples,
        positions_per_text=counters.positions_per_text,
        top_k=counters.top_k,
        positions=counters.positions,
        drop_bos=store.drop_bos,
        orderings=orderings,
    )
    write_json(store.orderings(cell), {"cell": _cell_params(cell), **doc.model_dump(mode="json")})


def load_orderings(store: ResultsStore, cell: Cell) -> dict[str, list[OrderingEntry]]:
    path = store.orderings(cell)
    raw = read_json(path)
    try:
        doc = OrderingsFile.model_validate({k: v for k, v in raw.items() if k != "cell"})
    except (ValidationError, AttributeError) as exc:
        raise ValueError(f"malformed orderings file {path}: {exc}") from exc
    missing = [name for name in ORDERINGS if name not in doc.orderings]
    if missing:
        raise ValueError(f"orderings file {path} lacks {', '.join(missing)}")
    return doc.orderings


def save_adl(store: ResultsStore, cell: Cell, stats: AdlStats, lens: AdlLens) -> None:
    save_tensors(store.adl_vectors(cell), stats.tensors())
    write_json(store.adl_lens(cell), {"cell": _cell_params(cell), **lens.model_dump(mode="json")})


def load_adl_lens(store: ResultsStore, cell: Cell) -> AdlLens:
    path = store.adl_lens(cell)
    raw = read_json(path)
    try:
        return AdlLens.model_validate({k: v for k, v in raw.items() if k != "cell"})
    except (ValidationError, AttributeError) as exc:
        raise ValueError(f"malformed ADL lens file {path}: {exc}") from exc


def save_pass_record(store: ResultsStore, cell: Cell, record: PassRecord) -> None:
    write_json(store.pass_record(cell), record.model_dump(mode="json"))


def load_pass_record(store: ResultsStore, cell: Cell) -> PassRecord:
    path = store.pass_record(cell)
    try:
        return PassRecord.model_validate(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"malformed pass record {path}: {exc}") from exc
