"""Expand an experiment definition into its ordered cells; map array task ids onto them.

Order is organism-major, then seed-major (for each organism, for each seed, for each value [, for
each method]), which is the SLURM array order. Cells that share base model, corpus and seed are
filled by one engine pass, whatever their organism: every LoRA finetune is an adapter on one copy of
the base (one base forward per batch for all of them), and full-weight finetunes join the same pass
as separate models (the engine's memory plan may run them in passes of their own when they do not
fit beside the others). Several experiments planned together (a study) share those passes too; a
cell that two experiments both contain is computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from logitdiff.config.loader import Registry
from logitdiff.config.schema import ExperimentConfig, SweptParameter
from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.registry import ORDERING_CHOICES, READOUT_CHOICES, RunChoice, result_key, spec_of, specs_for

ArrayUnit = Literal["cell", "pass"]

MAX_SEED = 2**32  # the range every seeded library accepts (numpy's legacy seeding, CUDA generators)
# The CLI option that sets each parameter an experiment may sweep (keys: the GridOptions fields).
# An experiment refuses the option of the parameter it sweeps; the launchers leave it out for it.
SWEPT_FLAG: dict[SweptParameter, str] = {"variant": "--organism-variant", "top_k": "--top-k", "positions": "--positions", "samples": "--samples"}


@dataclass(frozen=True)
class GridOptions:
    """What the CLI may override. None means: take the experiment's default."""

    model: str | None = None
    organism: str | None = None  # one name, a comma-separated list, or "all" (every organism of the model)
    variant: str | None = None
    seeds: Sequence[int] | None = None
    values: Sequence[str] | None = None
    samples: int | None = None
    positions: int | None = None
    top_k: int | None = None
    corpus: str | None = None
    adl_readout: str = "lens"  # lens, patchscope or both
    orderings: tuple[str, ...] = RunChoice.orderings  # LogitDiff's orderings; naming nmf adds its topics
    nmf_topics: int = RunChoice.nmf_topics
    nmf_mode: str = RunChoice.nmf_mode
    nmf_orthogonality: float = RunChoice.nmf_orthogonality
    drop_bos: bool = False  # leave the BOS position out of the counts


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


def organisms_of(reg: Registry, spec: str, model: str, variants: Sequence[str]) -> list[str]:
    """The organisms an --organism value names: one, a comma-separated list, or `all` (every configured
    organism with finetunes of `model` for all of `variants`, by name)."""
    if spec.strip() == "all":
        names = [o.name for o in sorted(reg.organisms.values(), key=lambda o: o.name)
                 if all(v in o.finetuned_models.get(model, {}) for v in variants)]  # fmt: skip
        if not names:
            raise UserError(f"--organism all: no organism has finetunes of {model!r} for variant(s) {', '.join(variants)}")
        return names
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UserError("--organism is empty; give an organism, a comma-separated list of them, or all")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"--organism names {', '.join(repeated)} more than once")
    return [reg.organism(n).name for n in names]


def expand(reg: Registry, exp: ExperimentConfig, opts: GridOptions) -> list[Cell]:
    if getattr(opts, exp.swept) is not None:
        raise UserError(f"{SWEPT_FLAG[exp.swept]} cannot be set for {exp.cli_name}: it sweeps {exp.swept}; use --values instead")
    model = reg.model(opts.model or exp.defaults.model).name
    values = _parse_values(exp, opts.values) if opts.values is not None else list(exp.values)
    seeds = _check_seeds(opts.seeds) if opts.seeds is not None else list(exp.seeds)
    variants = [str(v) for v in values] if exp.swept == "variant" else [opts.variant or exp.defaults.variant]
    organisms = organisms_of(reg, opts.organism or exp.defaults.organism, model, variants)
    if opts.adl_readout not in READOUT_CHOICES:
        raise UserError(f"--adl-readout must be one of {', '.join(READOUT_CHOICES)}, got {opts.adl_readout!r}")
    unknown = [o for o in opts.orderings if o not in ORDERING_CHOICES]
    if unknown:
        raise UserError(f"--orderings: unknown ordering {unknown[0]!r}; known: {', '.join(ORDERING_CHOICES)}")
    cells: list[Cell] = []
    for organism in organisms:
        cells += _organism_cells(reg, exp, opts, model, organism, variants, values, seeds, first_index=len(cells))
    return cells


def _organism_cells(
    reg: Registry, exp: ExperimentConfig, opts: GridOptions, model: str, organism: str,
    variants: list[str], values: list[str] | list[int], seeds: list[int], first_index: int,
) -> list[Cell]:  # fmt: skip
    for v in variants:
        reg.finetuned(organism, model, v)  # raises with the known variants
    corpus = opts.corpus or default_corpus(reg, exp, model, organism)
    choice = RunChoice(adl_readouts=READOUT_CHOICES[opts.adl_readout], orderings=tuple(opts.orderings), nmf_topics=opts.nmf_topics,
                       nmf_mode=opts.nmf_mode, nmf_orthogonality=opts.nmf_orthogonality)
    specs = [spec for method in exp.methods for spec in specs_for(method, choice)]

    cells: list[Cell] = []
    for seed in seeds:
        for value in values:
            for spec in specs:
                params = {
                    "variant": opts.variant or exp.defaults.variant,
                    "samples": opts.samples or exp.fixed.samples,
                    "positions": opts.positions or exp.fixed.positions,
                    "top_k": opts.top_k or exp.fixed.top_k,
                }
                params[exp.swept] = value
                cells.append(
                    Cell(
                        index=first_index + len(cells),
                        experiment=exp.name,
                        model=model,
                        organism=organism,
                        variant=str(params["variant"]),
                        corpus=corpus,
                        seed=seed,
                        method=spec.method,
                        samples=int(params["samples"]),
                        positions=int(params["positions"]),
                        top_k=int(params["top_k"]),
                        adl_layer=exp.fixed.adl_layer,
                        swept=exp.swept,
                        value=value,
                        readout=spec.readout,
                        method_options=spec.cell_options(choice),
                        drop_bos=opts.drop_bos,
                    )
                )
    vocab = reg.model(model).vocab_size
    for cell in cells:
        spec_of(cell).check_cell(cell, vocab, model)
    return cells


def pass_groups(cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells per engine pass, in order of first appearance: every finetune (organism, variant) of one
    (base model, corpus, seed, drop_bos) together. LoRA finetunes become adapters of one base copy; whether a
    full-weight finetune fits beside them is the engine's memory plan to decide when it loads."""
    groups: dict[tuple[str, str, int, bool], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.model, c.corpus, c.seed, c.drop_bos), []).append(c)
    return list(groups.values())


def plan_cells(experiments: Sequence[Sequence[Cell]]) -> list[Cell]:
    """The cells several experiments need, each stored result once (the first experiment's cell stands for it)."""
    unique: dict[tuple[object, ...], Cell] = {}
    for cells in experiments:
        for c in cells:
            unique.setdefault(result_key(c), c)
    return list(unique.values())


def planned_blackbox(grids: Sequence[Sequence[Cell]], todo: Sequence[Cell]) -> frozenset[Cell]:
    """The cells of `todo` that also run the blackbox baseline; a baseline cell of a later experiment is
    stood for by the equal cell `plan_cells` kept."""
    stand_in = {result_key(c): c for c in todo}
    return frozenset(stand_in.get(result_key(b), b) for cells in grids for b in blackbox_cells(list(cells)))


def blackbox_cells(cells: list[Cell]) -> list[Cell]:
    """Where the blackbox baseline runs (SPEC §6): once per finetuned model and seed.

    K, T and S only change the methods' input, so their grids probe one finetuned model and the
    baseline runs once per seed, at the first value. In mix-ratio each value is another finetune
    (variant), so the baseline runs per variant and seed.
    """
    first: dict[tuple[str, str, int], Cell] = {}
    for c in cells:
        first.setdefault((c.organism, c.variant, c.seed), c)
    return list(first.values())


def array_units(cells: list[Cell], unit: ArrayUnit) -> list[list[Cell]]:
    """The work of each array task: one cell each, or all cells of one engine pass each."""
    if unit == "cell":
        return [[c] for c in cells]
    return pass_groups(cells)


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
