"""Generic I/O of a cell's method result: its readable JSON documents, its tensor files and its pass record.

Paths come from ResultsStore (the method registry names each method's files); every write is atomic.
Each method writes its readable JSON last, so its presence means the cell's method result is complete.
Loads raise ValueError on a truncated or malformed file so the runner can redo the cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from logitdiff.core.atomic import read_json, write_json
from logitdiff.core.cell import Cell
from logitdiff.engine.record import PassRecord
from logitdiff.results.store import ResultsStore

if TYPE_CHECKING:
    import torch

_Doc = TypeVar("_Doc", bound=BaseModel)


def save_doc(path: Path, cell: Cell, doc: BaseModel) -> None:
    """A readable method result: the cell it belongs to, then the document's fields."""
    write_json(path, {"cell": cell.model_dump(mode="json"), **doc.model_dump(mode="json")})


def load_doc(path: Path, kind: type[_Doc], what: str) -> _Doc:
    raw = read_json(path)
    try:
        return kind.model_validate({k: v for k, v in raw.items() if k != "cell"})
    except (ValidationError, AttributeError) as exc:
        raise ValueError(f"malformed {what} file {path}: {exc}") from exc


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


def as_stored(declared: dict[str, tuple[torch.dtype, int]]) -> dict[str, tuple[str, int]]:
    """The engine's declaration of a result's tensors as safetensors names its dtypes."""
    import torch

    names = {torch.int64: "I64", torch.float64: "F64", torch.float32: "F32"}
    return {name: (names[dtype], rank) for name, (dtype, rank) in declared.items()}


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
