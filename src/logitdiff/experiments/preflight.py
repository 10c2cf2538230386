"""Checks of a run's inputs that need no model: each fails with one line before anything loads or runs.

Without them a bad --device or corpus fails only after the model pair is loaded (or is recorded as a
failed cell), and an unwritable --output-dir only after the whole engine pass and grading.
"""

from __future__ import annotations

import sys

from logitdiff.core.atomic import remove_stale_temporaries
from logitdiff.core.cell import Cell
from logitdiff.engine.models import pick_device, remove_stale_copies, requested_dtype
from logitdiff.experiments.folders import check_writable_dir
from logitdiff.experiments.settings import RunSettings


def check_run_inputs(settings: RunSettings, todo: list[Cell], plot: bool) -> None:
    """Everything this invocation will need, checked before any model, judge or stored result is touched
    (the corpus is read by `validate`, which `--check` runs too)."""
    if todo:
        pick_device(settings.device)
        requested_dtype(settings.dtype)
        check_writable_dir(settings.results_dir, "--results-dir")
    if plot:
        check_writable_dir(settings.output_dir, "--output-dir")


def remove_debris(settings: RunSettings) -> None:
    """Temporaries a killed run left (atomic writes, a half-made offline model copy): nothing reads them,
    and a GGUF copy's folder is ~150 MB."""
    removed = remove_stale_temporaries(settings.results_dir) + remove_stale_temporaries(settings.llm_cache()) + remove_stale_copies(settings.cache_dir)
    if removed:
        print(f"removed {removed} temporary file(s) or folder(s) left by a stopped run", file=sys.stderr)
