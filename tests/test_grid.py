"""Grid expansion, ordering, overrides and SLURM array-id mapping."""

import pytest

from logitdiff.config.loader import Registry
from logitdiff.errors import UserError
from logitdiff.experiments.grid import GridOptions, array_units, expand, task_for_id


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
    with pytest.raises(UserError, match="--values"):
        expand(reg, reg.experiment(experiment), opts)


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
    assert len(units) == 25  # 5 variants x 5 seeds; both methods share the pass
    assert all(len(u) == 2 and u[0].pass_key == u[1].pass_key for u in units)
    topk = array_units(expand(reg, reg.experiment("topk-depth"), GridOptions()), "pass")
    assert [len(u) for u in topk] == [9] * 5


def test_task_id_mapping() -> None:
    assert task_for_id("0", 45) == 0
    assert task_for_id("44", 45) == 44
    assert task_for_id("45", 45) is None
    assert task_for_id("1000", 45) is None
    for bad in (None, "", "x", "-1"):
        with pytest.raises(UserError, match="SLURM_ARRAY_TASK_ID"):
            task_for_id(bad, 45)
