"""Expand an experiment definition into its ordered cells; map array task ids onto them.

Order is seed-major (for each seed, for each value [, for each method]), which is the SLURM array
order. Cells that share model, organism, corpus and seed are filled by one engine pass when their
variants are LoRA adapters (one base forward for all of them); a full-weight variant gets a pass of
its own per (model, organism, variant, corpus, seed). Several experiments planned together (a study)
share those passes too; a cell that two experiments both contain is computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from logitdiff.config.loader import Registry
from logitdiff.config.schema import ExperimentConfig, SweptParameter
from logitdiff.core.cell import AdlReadout, Cell, Method
from logitdiff.core.errors import UserError

ArrayUnit = Literal["cell", "pass"]
ADL_READOUT_CHOICES: dict[str, tuple[AdlReadout, ...]] = {"lens": ("lens",), "patchscope": ("patchscope",), "both": ("lens", "patchscope")}

MAX_SEED = 2**32  # the range every seeded library accepts (numpy's legacy seeding, CUDA generators)
# The CLI option that sets each parameter an experiment may sweep (keys: the GridOptions fields).
# An experiment refuses the option of the parameter it sweeps; the launchers leave it out for it.
SWEPT_FLAG: dict[SweptParameter, str] = {"variant": "--organism-variant", "top_k": "--top-k", "positions": "--positions", "samples": "--samples"}


@dataclass(frozen=True)
class GridOptions:
    """What the CLI may override. None means: take the experiment's default."""

    model: str | None = None
    organism: str | None = None
    variant: str | None = None
    seeds: Sequence[int] | None = None
    values: Sequence[str] | None = None
    samples: int | None = None
    positions: int | None = None
    top_k: int | None = None
    corpus: str | None = None
    adl_readout: str = "lens"  # lens, patchscope or both


def _refuse_repeats(flag: str, given: Sequence[object]) -> None:
    """A repeated seed or value would run and record the same cells twice (and count twice in a plot's mean)."""
    repeated = [v for i, v in enumerate(given) if v in given[:i]]
    if repeated:
        raise UserError(f"{flag} lists {repeated[0]} more than once; give each value once")


def _parse_values(exp: ExperimentConfig, raw: Sequence[str]) -> list[str] | list[int]:
    if not raw:
        raise UserError(f"--values is empty; give comma-separated values of {exp.swept}, or leave it out for the grid's")
    if exp.swept == "variant":
        _refuse_repeats("--values", raw)
        return [str(v) for v in raw]
    try:
        vals = [int(v) for v in raw]
    except ValueError as exc:
        raise UserError(f"--values for {exp.cli_name} must be integers ({exp.swept}), got {', '.join(raw)}") from exc
    if any(v <= 0 for v in vals):
        raise UserError(f"--values for {exp.cli_name} must be positive integers")
    _refuse_repeats("--values", vals)
    return vals


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if not seeds:
        raise UserError("--seeds is empty; give comma-separated seeds like 42,1042, or leave it out for the grid's")
    bad = [s for s in seeds if not 0 <= s < MAX_SEED]
    if bad:
        raise UserError(f"--seeds must be integers from 0 to {MAX_SEED - 1} (numpy and torch seeds), got {bad[0]}")
    _refuse_repeats("--seeds", seeds)
    return list(seeds)


def default_corpus(reg: Registry, exp: ExperimentConfig, model: str, organism: str) -> str:
    """The organism's corpus for this model (a bundled file, kept relative to the repo root as the
    config writes it, so records do not name this machine's folders) or the grid's."""
    return reg.organism(organism).default_corpus.get(model, exp.corpus)


def expand(reg: Registry, exp: ExperimentConfig, opts: GridOptions) -> list[Cell]:
    if getattr(opts, exp.swept) is not None:
        raise UserError(f"{SWEPT_FLAG[exp.swept]} cannot be set for {exp.cli_name}: it sweeps {exp.swept}; use --values instead")
    model = reg.model(opts.model or exp.defaults.model).name
    organism = reg.organism(opts.organism or exp.defaults.organism).name
    values = _parse_values(exp, opts.values) if opts.values is not None else list(exp.values)
    seeds = _check_seeds(opts.seeds) if opts.seeds is not None else list(exp.seeds)
    variants = [str(v) for v in values] if exp.swept == "variant" else [opts.variant or exp.defaults.variant]
    for v in variants:
        reg.finetuned(organism, model, v)  # raises with the known variants
    corpus = opts.corpus or default_corpus(reg, exp, model, organism)
    methods: list[Method] = list(exp.methods)
    if opts.adl_readout not in ADL_READOUT_CHOICES:
        raise UserError(f"--adl-readout must be one of {', '.join(ADL_READOUT_CHOICES)}, got {opts.adl_readout!r}")
    readouts = ADL_READOUT_CHOICES[opts.adl_readout]

    cells: list[Cell] = []
    for seed in seeds:
        for value in values:
            for method, readout in [(m, r) for m in methods for r in (readouts if m == "adl" else ("lens",))]:
                params = {
                    "variant": opts.variant or exp.defaults.variant,
                    "samples": opts.samples or exp.fixed.samples,
                    "positions": opts.positions or exp.fixed.positions,
                    "top_k": opts.top_k or exp.fixed.top_k,
                }
                params[exp.swept] = value
                cells.append(
                    Cell(
                        index=len(cells),
                        experiment=exp.name,
                        model=model,
                        organism=organism,
                        variant=str(params["variant"]),
                        corpus=corpus,
                        seed=seed,
                        method=method,
                        samples=int(params["samples"]),
                        positions=int(params["positions"]),
                        top_k=int(params["top_k"]),
                        adl_layer=exp.fixed.adl_layer,
                        swept=exp.swept,
                        value=value,
                        readout=readout,
                    )
                )
    vocab = reg.model(model).vocab_size
    for cell in cells:
        if vocab is not None and cell.method == "logitdiff" and cell.top_k > vocab:
            raise UserError(f"K={cell.top_k} exceeds the vocabulary of {model} ({vocab} tokens); cell {cell.label()}")
        if cell.method == "adl" and cell.positions <= 5:
            raise UserError(f"ADL needs more than 5 positions (its norms use positions >= 5); cell {cell.label()} has T={cell.positions}")
    return cells


def pass_groups(reg: Registry, cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells per engine pass, in order of first appearance: all LoRA variants of one (model, organism,
    corpus, seed) together, each full-weight variant alone."""
    groups: dict[tuple[str, str, str, str, int], list[Cell]] = {}
    for c in cells:
        shared = reg.finetuned(c.organism, c.model, c.variant).is_adapter
        key = (c.model, c.organism, "" if shared else c.variant, c.corpus, c.seed)
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def plan_cells(experiments: Sequence[Sequence[Cell]]) -> list[Cell]:
    """The cells several experiments need, each stored result once (the first experiment's cell stands for it)."""
    unique: dict[tuple[object, ...], Cell] = {}
    for cells in experiments:
        for c in cells:
            unique.setdefault(c.result_key, c)
    return list(unique.values())


def planned_blackbox(grids: Sequence[Sequence[Cell]], todo: Sequence[Cell]) -> frozenset[Cell]:
    """The cells of `todo` that also run the blackbox baseline; a baseline cell of a later experiment is
    stood for by the equal cell `plan_cells` kept."""
    stand_in = {c.result_key: c for c in todo}
    return frozenset(stand_in.get(b.result_key, b) for cells in grids for b in blackbox_cells(list(cells)))


def blackbox_cells(cells: list[Cell]) -> list[Cell]:
    """Where the blackbox baseline runs (SPEC §6): once per finetuned model and seed.

    K, T and S only change the methods' input, so their grids probe one finetuned model and the
    baseline runs once per seed, at the first value. In mix-ratio each value is another finetune
    (variant), so the baseline runs per variant and seed.
    """
    first: dict[tuple[str, int], Cell] = {}
    for c in cells:
        first.setdefault((c.variant, c.seed), c)
    return list(first.values())


def array_units(reg: Registry, cells: list[Cell], unit: ArrayUnit) -> list[list[Cell]]:
    """The work of each array task: one cell each, or all cells of one engine pass each."""
    if unit == "cell":
        return [[c] for c in cells]
    return pass_groups(reg, cells)


def task_for_id(raw_id: str | None, n_units: int) -> int | None:
    """SLURM_ARRAY_TASK_ID -> unit index, or None for the plotting task (ids >= n_units)."""
    if raw_id is None or raw_id.strip() == "":
        raise UserError("--array-job needs SLURM_ARRAY_TASK_ID; run inside `sbatch --array` or export it")
    try:
        task = int(raw_id)
    except ValueError as exc:
        raise UserError(f"SLURM_ARRAY_TASK_ID must be an integer, got {raw_id!r}") from exc
    if task < 0:
        raise UserError(f"SLURM_ARRAY_TASK_ID must be >= 0, got {task}")
    return task if task < n_units else None
