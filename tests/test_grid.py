"""Grid expansion, ordering, overrides and SLURM array-id mapping."""

from dataclasses import fields, replace
from pathlib import Path
from typing import get_args

import pytest

from logitdiff.config.loader import Registry
from logitdiff.config.schema import SweptParameter
from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.core.names import slug
from logitdiff.experiments.grid import SWEPT_FLAG, GridOptions, array_units, expand, pass_groups, plan_cells, task_for_id
from logitdiff.registry import result_key, results_store


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry.load()


def test_cell_counts(reg: Registry) -> None:
    counts = {name: len(expand(reg, reg.experiment(name), GridOptions())) for name in reg.experiments}
    assert counts == {"mix_ratio": 50, "topk_depth": 45, "token_positions": 35, "n_samples": 30}


def test_seed_major_order(reg: Registry) -> None:
    cells = expand(reg, reg.experiment("topk-depth"), GridOptions())
    assert [(c.seed, c.top_k) for c in cells[:10]] == [(42, k) for k in (5, 10, 20, 50, 100, 200, 500, 1000, 5000)] + [(1042, 5)]
    assert (cells[44].seed, cells[44].top_k) == (4042, 5000)
    assert [c.index for c in cells] == list(range(45))
    assert all((c.samples, c.positions, c.variant) == (1000, 30, "mix1-0p5") for c in cells)


def test_mix_ratio_cells_carry_method(reg: Registry) -> None:
    cells = expand(reg, reg.experiment("mix-ratio"), GridOptions())
    assert [(c.variant, c.method) for c in cells[:4]] == [("default", "logitdiff"), ("default", "adl"), ("mix1-0p5", "logitdiff"), ("mix1-0p5", "adl")]
    assert {c.top_k for c in cells} == {100}


def test_overrides(reg: Registry) -> None:
    opts = GridOptions(seeds=[7], values=["3", "1"], samples=12, organism="fda_approval", variant="default", corpus="x.jsonl")
    cells = expand(reg, reg.experiment("topk-depth"), opts)
    assert [(c.seed, c.top_k, c.samples, c.organism, c.variant, c.corpus) for c in cells] == [
        (7, 3, 12, "fda_approval", "default", "x.jsonl"),
        (7, 1, 12, "fda_approval", "default", "x.jsonl"),
    ]


@pytest.mark.parametrize(
    ("experiment", "field"),
    [("topk-depth", "top_k"), ("token-positions", "positions"), ("n-samples", "samples"), ("mix-ratio", "variant")],
)
def test_swept_parameter_cannot_be_overridden(reg: Registry, experiment: str, field: str) -> None:
    opts = GridOptions(**{field: "default" if field == "variant" else 7})
    with pytest.raises(UserError, match=f"^{SWEPT_FLAG[field]} cannot be set for {experiment}: it sweeps {field}; use --values"):
        expand(reg, reg.experiment(experiment), opts)


def test_every_sweepable_parameter_has_its_option_and_grid_field() -> None:
    assert list(SWEPT_FLAG) == list(get_args(SweptParameter))  # the schema's order is the listing order
    assert set(SWEPT_FLAG) <= {f.name for f in fields(GridOptions)}


def test_bad_values_and_unknown_variant(reg: Registry) -> None:
    with pytest.raises(UserError, match="integers"):
        expand(reg, reg.experiment("topk-depth"), GridOptions(values=["ten"]))
    with pytest.raises(UserError, match="known variants"):
        expand(reg, reg.experiment("mix-ratio"), GridOptions(values=["default", "mix9"]))


def test_adl_needs_more_than_five_positions(reg: Registry) -> None:
    with pytest.raises(UserError, match="more than 5 positions"):
        expand(reg, reg.experiment("mix-ratio"), GridOptions(positions=5))


def test_array_units_by_pass(reg: Registry) -> None:
    cells = expand(reg, reg.experiment("mix-ratio"), GridOptions())
    units = array_units(cells, "pass")
    assert len(units) == 5  # one pass per seed: the 5 LoRA variants share the base forward, both methods too
    assert all(len(u) == 10 and len({c.seed for c in u}) == 1 and len({c.variant for c in u}) == 5 for u in units)
    assert [c for u in units for c in u] == sorted(cells, key=lambda c: c.seed != 42)  # seed order kept
    topk = array_units(expand(reg, reg.experiment("topk-depth"), GridOptions()), "pass")
    assert [len(u) for u in topk] == [9] * 5


def test_full_weight_variant_is_planned_into_the_shared_pass(reg: Registry) -> None:
    # the engine's memory plan decides when it loads whether the full model fits beside the base
    cells = expand(reg, reg.experiment("mix-ratio"), GridOptions(seeds=[42, 1042], values=["default", "full", "mix1-0p5"]))
    units = array_units(cells, "pass")
    assert [sorted({c.variant for c in u}) for u in units] == [["default", "full", "mix1-0p5"]] * 2
    assert [len(u) for u in units] == [6] * 2


def test_many_organisms_share_the_passes_of_their_base_model(reg: Registry) -> None:
    opts = GridOptions(model="gemma3_1B", organism="cake_bake,fda_approval", seeds=[42, 1042])
    cells = expand(reg, reg.experiment("mix-ratio"), opts)
    assert len(cells) == 2 * 2 * 10 and [c.index for c in cells] == list(range(40))
    assert [c.organism for c in cells] == ["cake_bake"] * 20 + ["fda_approval"] * 20  # organism-major array order
    units = array_units(cells, "pass")
    assert [len(u) for u in units] == [20, 20]  # one pass per seed for both organisms' 5 variants × 2 methods
    assert all({c.organism for c in u} == {"cake_bake", "fda_approval"} and len({c.seed for c in u}) == 1 for u in units)
    assert cells[20].label().startswith("fda_approval #20 seed=42")


def test_organism_all_and_bad_organism_lists(reg: Registry) -> None:
    exp = reg.experiment("mix-ratio")
    every = expand(reg, exp, GridOptions(model="gemma3_1B", organism="all", seeds=[42]))
    assert sorted({c.organism for c in every}) == sorted(
        o.name for o in reg.organisms.values() if all(v in o.finetuned_models.get("gemma3_1B", {}) for v in exp.values)
    )
    assert {"cake_bake", "fda_approval"} <= {c.organism for c in every}
    assert {c.organism for c in expand(reg, exp, GridOptions(model="smollm2_135M", organism="all", seeds=[42]))} == {"cake_bake"}
    with pytest.raises(UserError, match="more than once"):
        expand(reg, exp, GridOptions(organism="cake_bake,cake_bake"))
    with pytest.raises(UserError, match="unknown organism"):
        expand(reg, exp, GridOptions(organism="cake_bake,nope"))
    with pytest.raises(UserError, match="no organism has finetunes"):
        expand(reg, exp, GridOptions(model="gemma3_1B", organism="all", values=["no-such-variant"]))


def test_study_plan_needs_one_pass_per_seed_and_each_result_once(reg: Registry) -> None:
    opts = GridOptions(model="smollm2_135M", organism="cake_bake", seeds=[42, 1042])
    grids = [expand(reg, reg.experiment(name), opts) for name in ("mix-ratio", "topk-depth", "token-positions", "n-samples")]
    planned = plan_cells(grids)
    # per seed: mix-ratio 10, topk-depth 9, token-positions 7, n-samples 6; the LogitDiff cell K=100,
    # S=1000, T=30 of mix1-0p5 is in all four (mix-ratio's value mix1-0p5): stored once, not 4 times
    assert sum(map(len, grids)) == 2 * 32
    assert len(planned) == 2 * (32 - 3)
    assert len({result_key(c) for c in planned}) == len(planned)
    assert {result_key(c) for g in grids for c in g} == {result_key(c) for c in planned}
    groups = pass_groups(planned)
    assert [len({c.seed for c in g}) for g in groups] == [1, 1]
    assert {c.variant for c in groups[0]} == {"default", "mix1-0p5", "mix1-1p0", "mix1-1p5", "mix1-2p0"}



def test_study_plan_keeps_lens_and_patchscope_results_apart(reg: Registry) -> None:
    names = ("mix-ratio", "topk-depth", "token-positions", "n-samples")
    lens = plan_cells([expand(reg, reg.experiment(n), GridOptions(seeds=[42])) for n in names])
    both = plan_cells([expand(reg, reg.experiment(n), GridOptions(seeds=[42], adl_readout="both")) for n in names])
    adl = [c for c in lens if c.method == "adl"]
    assert adl  # the study has ADL cells to double
    assert len(both) == len(lens) + len(adl)
    patchscope = {c.model_copy(update={"readout": "lens", "index": 0, "experiment": ""}) for c in both if c.readout == "patchscope"}
    assert patchscope == {c.model_copy(update={"index": 0, "experiment": ""}) for c in adl}
    # one engine pass still serves both readouts of a seed
    assert len(pass_groups(both)) == len(pass_groups(lens)) == 1

def test_task_id_mapping() -> None:
    assert task_for_id("0", 45) == 0
    assert task_for_id("44", 45) == 44
    assert task_for_id("45", 45) is None
    assert task_for_id("1000", 45) is None
    for bad in (None, "", "x", "-1"):
        with pytest.raises(UserError, match="SLURM_ARRAY_TASK_ID"):
            task_for_id(bad, 45)


def test_drop_bos_is_part_of_the_cell_and_keeps_the_default_key(reg: Registry, tmp_path: Path) -> None:
    """--drop-bos changes every number, so it is in the cell's result key and folder; a default cell keeps
    the key and folder results were stored under before (a rerun finds them and recomputes nothing)."""
    opts = GridOptions(seeds=[42], values=["default"])
    default = expand(reg, reg.experiment("mix-ratio"), opts)
    nobos = expand(reg, reg.experiment("mix-ratio"), replace(opts, drop_bos=True))
    assert [c.drop_bos for c in default] == [False, False] and [c.drop_bos for c in nobos] == [True, True]
    store = results_store(tmp_path)
    ld, adl = default
    corpus = "science-of-finetuning/fineweb-1m-sample"
    assert result_key(ld) == ("gemma3_1B", "cake_bake", "default", corpus, 42, "logitdiff", 1000, 30, 100)
    assert result_key(adl) == ("gemma3_1B", "cake_bake", "default", corpus, 42, "adl", 1000, 30, 0.5)
    assert [store.method_dir(c).relative_to(tmp_path).as_posix() for c in default] == [
        f"gemma3_1B/cake_bake/default/{slug(corpus)}/seed42/logitdiff/S1000_T30_K100", f"gemma3_1B/cake_bake/default/{slug(corpus)}/seed42/adl/S1000_T30_L0.5"]
    assert [store.method_dir(c).relative_to(store.pass_dir(c)).as_posix() for c in nobos] == ["logitdiff/S1000_T30_K100_nobos", "adl/S1000_T30_L0.5_nobos"]
    assert all(result_key(a) != result_key(b) for a in default for b in nobos)
    # a result document written before the cell had drop_bos reads as the default cell
    assert Cell.model_validate({k: v for k, v in ld.model_dump().items() if k != "drop_bos"}) == ld
    # the two never share a stored result or an engine pass
    assert plan_cells([default, nobos]) == default + nobos
    assert pass_groups(default + nobos) == [default, nobos]
