"""Read a diffing corpus and yield its texts in the seed's shuffled order.

Sources:
- a Hugging Face dataset id (split `train`, column `text`), shuffled with `Dataset.shuffle(seed=seed)`;
- a local file: `.jsonl` / `.jsonl.gz` (field `text`), `.parquet` (column `text`), or `.txt` with ONE
  TEXT PER LINE (a blank line is an empty text and is skipped by sampling like any empty text).

Local files are shuffled with the permutation `datasets` uses for `.shuffle(seed)`
(`numpy.random.default_rng(seed).permutation(n)`), so a local copy of a hub corpus gives the same
order as the hub dataset. Row indices are positions in the unshuffled source.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from logitdiff.core.errors import UserError
from logitdiff.core.paths import resolve_repo_path
from logitdiff.engine.hub import hub_reachable, in_hf_cache

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".txt")
_ROW = "__logitdiff_row__"


def _local_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in LOCAL_SUFFIXES if name.endswith(s)), None)


def looks_local(corpus: str) -> bool:
    """A path-like name (existing, or with a known suffix or a folder part) is a local file, never a hub id."""
    p = Path(corpus)
    return p.exists() or _local_suffix(p) is not None or corpus.startswith((".", "/", "~"))


def local_corpus_path(corpus: str) -> Path:
    """A local corpus as given: relative to the working folder, else to the repository root (where
    configs' bundled corpora are named from), so records keep the path as the user or config wrote it."""
    path = Path(corpus).expanduser()
    if path.is_absolute() or path.exists():
        return path
    in_repo = resolve_repo_path(path)
    return in_repo if in_repo.exists() else path


def _not_utf8(path: Path, line_no: int, exc: UnicodeDecodeError) -> UserError:
    byte = exc.object[exc.start]
    return UserError(f"corpus {path}: line {line_no} is not UTF-8 text (byte {byte:#04x}); re-encode the file as UTF-8")


def _read_jsonl(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    texts: list[str] = []
    with opener(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, line_no, exc) from exc
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"corpus {path}: line {line_no} is not valid JSON ({exc.msg}); fix or regenerate the file") from exc
            if not isinstance(row, dict) or "text" not in row:
                raise UserError(f"corpus {path}: line {line_no} has no \"text\" field; every line must be an object with a \"text\" string")
            texts.append(str(row["text"] or ""))
    return texts


def is_blank(text: str) -> bool:
    """An empty or whitespace-only text: no text to diff on (sampling skips it)."""
    return not text.strip()


def _read_parquet(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowException as exc:
        raise UserError(f"corpus {path} is not a readable Parquet file ({str(exc).splitlines()[0][:120]}); fix or regenerate it") from exc
    if "text" not in table.column_names:
        raise UserError(f"corpus {path}: no column \"text\" (columns: {', '.join(table.column_names)})")
    return [t or "" for t in table.column("text").to_pylist()]


def _read_txt(path: Path) -> list[str]:
    data = path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data.count(b"\n", 0, exc.start) + 1, exc) from exc


def read_local_texts(path: Path) -> list[str]:
    suffix = _local_suffix(path)
    if suffix is None:
        raise UserError(f"corpus {path}: unknown file type; use one of {', '.join(LOCAL_SUFFIXES)}")
    if not path.is_file():
        raise UserError(f"corpus file {path} does not exist; pass an existing file with --corpus")
    try:
        if suffix == ".parquet":
            return _read_parquet(path)
        if suffix == ".txt":
            return _read_txt(path)
        return _read_jsonl(path)
    except (gzip.BadGzipFile, EOFError, PermissionError) as exc:
        raise UserError(f"corpus {path} cannot be read ({exc.__class__.__name__}: {exc}); fix or regenerate the file") from exc


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """The permutation `datasets.Dataset.shuffle(seed=seed)` applies to n rows."""
    return np.random.default_rng(seed).permutation(n)


def iter_dataset(ds: object, seed: int, name: str) -> Iterator[tuple[int, str]]:
    """Rows of a `datasets.Dataset` (column `text`) in `ds.shuffle(seed=seed)` order with their source indices."""
    from datasets import Dataset

    assert isinstance(ds, Dataset)
    if "text" not in ds.column_names:
        raise UserError(f"corpus {name}: no column \"text\" (columns: {', '.join(ds.column_names)})")
    ds = ds.select_columns(["text"]).add_column(_ROW, np.arange(len(ds)))
    for batch in ds.shuffle(seed=seed).iter(batch_size=256):
        for row, text in zip(batch[_ROW], batch["text"], strict=True):
            yield int(row), text or ""


def _load_hub(corpus: str) -> object:
    advice = f"pass a local file with --corpus FILE ({', '.join(LOCAL_SUFFIXES)})"
    if not hub_reachable() and not in_hf_cache(corpus, "dataset"):
        # Fail at once: datasets would retry the unreachable hub for ~30 s before giving up.
        raise UserError(f"corpus {corpus!r}: the Hugging Face hub is unreachable and the dataset is not in the local HF cache; {advice}")
    try:
        from datasets import load_dataset

        return load_dataset(corpus, split="train")
    except Exception as exc:  # datasets raises many types (connection, not found, offline); all mean: not available
        raise UserError(f"corpus {corpus!r} cannot be loaded ({exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0][:120]}); {advice}") from exc


def load_corpus(corpus: str, seed: int) -> Iterator[tuple[int, str]]:
    """(row index, text) pairs in the seed's shuffled order. Raises UserError if the corpus is unavailable."""
    if looks_local(corpus):
        texts = read_local_texts(local_corpus_path(corpus))  # eager: a bad file fails before any model runs
        return ((int(row), texts[row]) for row in shuffled_order(len(texts), seed))
    return iter_dataset(_load_hub(corpus), seed, corpus)
