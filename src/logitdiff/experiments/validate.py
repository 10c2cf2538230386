"""Everything about a run that can be checked without loading a model: the grid (models, organism,
variants, values, K within the vocabulary), the LLM ids, a grading rubric for the organism's type (agent
runs), the dtype and a local corpus file.

`logitdiff <experiment> --check` stops here; a real run passes the same checks first, so a launcher
that checks each call before submitting sees exactly the errors the jobs would hit.
"""

from __future__ import annotations

from typing import get_args

from logitdiff.config.loader import Registry
from logitdiff.config.schema import Dtype, require_grading_rubric
from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import local_corpus_path, looks_local
from logitdiff.experiments.grid import expand
from logitdiff.experiments.judge_choice import resolve_judge_id
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.llm.spec import parse_llm_id


def validated_cells(reg: Registry, settings: RunSettings) -> list[Cell]:
    """The run's cells; raises a one-line UserError for anything that cannot work."""
    cells = expand(reg, reg.experiment(settings.experiment), settings.grid)
    resolve_judge_id(settings.judge)
    if settings.mode is Mode.full:
        parse_llm_id(settings.agent_llm)
        parse_llm_id(settings.grader_llm)
        for organism in dict.fromkeys(c.organism for c in cells):
            require_grading_rubric(reg.organism(organism).type)
    if settings.dtype not in (None, "auto", *get_args(Dtype)):
        raise UserError(f"--dtype {settings.dtype!r}: allowed values are auto, {', '.join(get_args(Dtype))}")
    if settings.mode is not Mode.plotting:
        for corpus in dict.fromkeys(c.corpus for c in cells):
            if looks_local(corpus) and not local_corpus_path(corpus).is_file():
                raise UserError(f"corpus file {corpus} does not exist; pass an existing file with --corpus")
    return cells
