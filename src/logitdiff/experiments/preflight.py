"""Checks of a run's inputs that need no model: each fails with one line before anything loads or runs.

Without them a bad --device or corpus fails only after the model pair is loaded (or is recorded as a
failed cell), and an unwritable --output-dir only after the whole engine pass and grading.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import local_corpus_path, looks_local, read_local_texts
from logitdiff.engine.models import pick_device, requested_dtype
from logitdiff.experiments.settings import RunSettings


def check_writable_dir(path: Path, flag: str) -> None:
    """Create `path` if needed and prove a file can be written in it (permissions alone lie for root,
    read-only mounts and ACLs)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; pass a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path} is not writable ({exc.strerror or exc}); pass a folder you can write to") from exc


def check_corpus(corpus: str) -> None:
    """A local corpus file must exist and parse (UTF-8, the expected fields); hub ids are checked by the pass."""
    if looks_local(corpus):
        read_local_texts(local_corpus_path(corpus))


def check_run_inputs(settings: RunSettings, todo: list[Cell], plot: bool) -> None:
    """Everything this invocation will need, checked before any model, judge or stored result is touched."""
    if todo:
        pick_device(settings.device)
        requested_dtype(settings.dtype)
        check_writable_dir(settings.results_dir, "--results-dir")
        for corpus in dict.fromkeys(c.corpus for c in todo):
            check_corpus(corpus)
    if plot:
        check_writable_dir(settings.output_dir, "--output-dir")
