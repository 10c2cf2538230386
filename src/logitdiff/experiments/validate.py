"""Everything about a run that can be checked without loading a model: the grid (models, organism,
variants, values, K within the vocabulary), the LLM ids, a grading rubric for the organism's type (agent
runs), the dtype, the device map and a local corpus (read and counted).

`logitdiff <experiment> --check` stops here; a real run passes the same checks first, so a launcher
that checks each call before submitting sees exactly the errors the jobs would hit.
"""

from __future__ import annotations

import re
from typing import get_args

from logitdiff.config.loader import Registry
from logitdiff.config.schema import Dtype, require_grading_rubric
from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import is_blank, local_corpus_path, looks_local, read_local_texts
from logitdiff.experiments.grid import expand
from logitdiff.experiments.judge_choice import resolve_judge_id
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.llm.spec import parse_llm_id

# What accelerate's device_map accepts as a string: a placement strategy or one device.
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_ONE_DEVICE = re.compile(r"(cpu|mps|cuda(:\d+)?|\d+)")
# A token covers at least one byte of text and a tokenizer adds at most two special tokens (BOS, EOS),
# so a text of fewer bytes can never fill T positions; the exact count needs the tokenizer (the pass).
MAX_SPECIAL_TOKENS = 2


def check_local_corpus(corpus: str, cells: list[Cell]) -> None:
    """A local corpus parses and holds enough usable texts for every (S, T) of `cells`, as far as can be
    told without a tokenizer; a corpus too small fails here, not after a model pass."""
    texts = read_local_texts(local_corpus_path(corpus))
    sizes = [len(t.encode("utf-8")) for t in texts if not is_blank(t)]
    most = max(c.samples for c in cells)
    if len(sizes) < most:
        raise UserError(
            f"corpus {corpus} has {len(sizes)} usable (non-blank) texts of {len(texts)}, but S={most} are needed; "
            "lower --samples or use a larger corpus"
        )
    need: dict[int, int] = {}
    for c in cells:
        need[c.positions] = max(need.get(c.positions, 0), c.samples)
    for positions, samples in sorted(need.items()):
        long_enough = sum(1 for n in sizes if n + MAX_SPECIAL_TOKENS >= positions)
        if long_enough < samples:
            raise UserError(
                f"corpus {corpus}: at most {long_enough} of its {len(sizes)} usable texts are long enough for "
                f"T={positions} tokens, but S={samples} are needed; lower --samples/--positions or use a larger corpus"
            )


def check_device_map(device_map: str | None) -> None:
    if device_map is not None and device_map not in DEVICE_MAPS and not _ONE_DEVICE.fullmatch(device_map):
        raise UserError(f"--device-map {device_map!r}: use one of {', '.join(DEVICE_MAPS)} or a device (cpu, cuda:N)")


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
    check_device_map(settings.device_map)
    if settings.mode is not Mode.plotting:
        for corpus in dict.fromkeys(c.corpus for c in cells):
            if looks_local(corpus):
                check_local_corpus(corpus, [c for c in cells if c.corpus == corpus])
    return cells
