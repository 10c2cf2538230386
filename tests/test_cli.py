"""The CLI surface: grid listing, one-line errors with exit code 2, array-id errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from extra_experiment import EXTRA, configs_with_extra_experiment


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from logitdiff.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize(("experiment", "n"), [("topk-depth", 45), ("mix-ratio", 50), ("token-positions", 35), ("n-samples", 30)])
def test_grid_count(experiment: str, n: int) -> None:
    res = run("grid", experiment, "--count")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(n)


def test_grid_json_first_and_last_cell() -> None:
    cells = json.loads(run("grid", "topk-depth", "--json").stdout)
    assert (cells[0]["seed"], cells[0]["top_k"]) == (42, 5)
    assert (cells[44]["seed"], cells[44]["top_k"]) == (4042, 5000)


def test_grid_count_per_pass_and_overrides() -> None:
    assert run("grid", "topk-depth", "--array-unit", "pass", "--count").stdout.strip() == "5"
    # mix-ratio's five LoRA variants of a seed share one pass (one base forward); 'full' is planned into it
    # too (a second model beside the base, or a pass of its own inside the same task if it does not fit)
    assert run("grid", "mix-ratio", "--array-unit", "pass", "--count").stdout.strip() == "5"
    assert run("grid", "mix-ratio", "--array-unit", "pass", "--values", "default,full", "--count").stdout.strip() == "5"
    both = run("grid", "mix-ratio", "--organism", "cake_bake,fda_approval", "--seeds", "42", "--array-unit", "pass", "--count")
    assert both.stdout.strip() == "1"  # the two organisms' finetunes of gemma3_1B share the seed's pass
    assert run("grid", "n-samples", "--seeds", "42", "--values", "10,50", "--count").stdout.strip() == "2"


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_study_refuses_unknown_experiments() -> None:
    line = _one_line_error(run("study", "--experiments", "topk,n-samples"))
    assert "--experiments" in line and "topk-depth" in line


def test_study_plotting_writes_every_experiments_report(tmp_path: Path) -> None:
    res = run("study", "--mode", "plotting", "--seeds", "42", "--results-dir", str(tmp_path / "r"), "--output-dir", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    missing = {p.parent.parent.parent.name: len(json.loads(p.read_text())) for p in (tmp_path / "o").rglob("missing.json")}
    assert missing == {"mix_ratio": 10, "topk_depth": 9, "token_positions": 7, "n_samples": 6}  # nothing computed yet



def test_study_check_validates_every_experiment_and_runs_nothing(tmp_path: Path) -> None:
    ok = run("study", "--seeds", "42", "--adl-readout", "both", "--check", "--results-dir", str(tmp_path / "r"))
    assert ok.returncode == 0, ok.stderr
    # only mix-ratio has ADL cells (5 variants): the two readouts make it 5 LogitDiff + 2 x 5 ADL
    assert ok.stdout.strip() == "ok: mix-ratio 15 cells, topk-depth 9 cells, token-positions 7 cells, n-samples 6 cells"
    assert not (tmp_path / "r").exists()
    assert "--dtype 'fp8'" in _one_line_error(run("study", "--dtype", "fp8", "--check"))

def test_unknown_organism() -> None:
    line = _one_line_error(run("topk-depth", "--organism", "nope"))
    assert "unknown organism 'nope'" in line and "cake_bake" in line and "fda_approval" in line


def test_swept_parameter_refused() -> None:
    line = _one_line_error(run("topk-depth", "--top-k", "7"))
    assert "--top-k" in line and "sweeps top_k" in line


def test_bad_seeds_and_unit() -> None:
    assert "--seeds" in _one_line_error(run("grid", "topk-depth", "--seeds", "4x"))
    assert "--array-unit" in _one_line_error(run("grid", "topk-depth", "--array-unit", "job"))


def test_array_job_needs_task_id() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_ARRAY_TASK_ID"}
    res = subprocess.run(
        [sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--array-job", "--mode", "plotting"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert "SLURM_ARRAY_TASK_ID" in _one_line_error(res)
    assert "must be an integer" in _one_line_error(run("topk-depth", "--array-job", env={"SLURM_ARRAY_TASK_ID": "abc"}))


def test_variant_with_another_variants_weights_warns(tmp_path) -> None:
    """fda_approval gemma3_1B mix1-1p0 is mix1-0p9's adapter in the reference config (a copy error):
    a run over it says so instead of silently filing a 1:0.9 model under 1:1.0."""
    res = run("mix-ratio", "--model", "gemma3_1B", "--organism", "fda_approval", "--mode", "plotting",
              "--seeds", "42", "--values", "mix1-0p8,mix1-1p0", "--results-dir", str(tmp_path / "r"),
              "--output-dir", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    err = " ".join(res.stderr.split())
    assert "variant 'mix1-1p0' loads the same weights as 'mix1-0p9'" in err
    assert err.count("loads the same weights") == 1  # mix1-0p8 is its own model


def test_registry_finds_shared_weights_only_for_the_copy_error() -> None:
    from logitdiff.config.loader import Registry

    reg = Registry.load()
    shared = {(o, m, v) for o, org in reg.organisms.items() for m, variants in org.finetuned_models.items()
              for v in variants if reg.same_weights(o, m, v)}
    # cake_bake lists the same Llama adapter under llama32_1B and llama32_1B_Instruct (two model names),
    # which is not a variant copy error; within one model only the fda_approval pair shares weights.
    assert shared == {("fda_approval", "gemma3_1B", "mix1-1p0"), ("fda_approval", "gemma3_1B", "mix1-0p9")}


def test_unknown_option_is_one_line_with_the_suggestion() -> None:
    line = _one_line_error(run("topk-depth", "--seed", "42"))
    assert "No such option: --seed" in line and "--seeds" in line


def test_check_validates_everything_and_runs_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = run("topk-depth", "--model", "gemma3_1B", "--seeds", "42", "--check", "--results-dir", str(tmp_path / "r"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "ok: topk-depth, 9 cells"
    assert not (tmp_path / "r").exists()
    line = _one_line_error(run("topk-depth", "--model", "gemma3_1B", "--values", "5,262145", "--check"))
    assert "K=262145 exceeds the vocabulary of gemma3_1B (262144 tokens)" in line
    assert run("topk-depth", "--model", "gemma3_1B", "--values", "262144", "--seeds", "42", "--check").returncode == 0
    assert "exceeds the vocabulary of smollm2_135M" in _one_line_error(run("mix-ratio", "--model", "smollm2_135M", "--top-k", "50000", "--check"))
    assert "--dtype 'fp8'" in _one_line_error(run("n-samples", "--dtype", "fp8", "--check"))
    assert "corpus file" in _one_line_error(run("n-samples", "--corpus", str(tmp_path / "none.jsonl"), "--check"))
    assert "bad LLM id" in _one_line_error(run("n-samples", "--agent-llm", "gpt5", "--check"))


def test_grid_refuses_k_above_the_vocabulary() -> None:
    assert "exceeds the vocabulary" in _one_line_error(run("grid", "topk-depth", "--model", "smollm2_135M", "--values", "5,50000", "--count"))


LISTED = "mix-ratio\t--organism-variant\ntopk-depth\t--top-k\ntoken-positions\t--positions\nn-samples\t--samples\n"


def test_grid_list_prints_each_configured_experiment_and_the_option_it_sweeps() -> None:
    res = run("grid", "--list")
    assert res.returncode == 0, res.stderr
    assert res.stdout == LISTED


def test_grid_list_options_are_the_options_that_change_the_grid() -> None:
    res = run("grid", "--list-options")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["--model", "--organism", "--organism-variant", "--seeds", "--corpus", "--adl-readout", "--drop-bos",
                                  "--orderings", "--nmf-topics", "--nmf-mode", "--nmf-orthogonality",
                                  "--values", "--samples", "--positions", "--top-k", "--array-unit"]


def _command_options() -> dict[str, set[str]]:
    """Each command's long options, as the user sees them (the app built in this process)."""
    import typer

    from logitdiff.cli import _add_commands, _registry, app

    if not app.registered_commands:
        _add_commands(_registry())
    group = typer.main.get_command(app)
    return {name: {o for p in cmd.params for o in p.opts if o.startswith("--")} for name, cmd in group.commands.items()}  # type: ignore[attr-defined]


def test_run_option_groups_are_exactly_the_run_settings() -> None:
    from dataclasses import fields

    from logitdiff.cli import ArrayFlags, RunFlags, StoreFlags
    from logitdiff.experiments.settings import RunSettings

    declared = [f.name for cls in (RunFlags, StoreFlags, ArrayFlags) for f in fields(cls) if f.name != "store"]
    assert sorted(declared) == sorted(set(RunSettings.model_fields) - {"experiment", "grid"})


def test_every_command_offers_every_option_of_its_kind() -> None:
    opts = _command_options()
    grid_flags = {"--model", "--organism", "--organism-variant", "--seeds", "--corpus", "--adl-readout"}
    sweep_flags = {"--values", "--samples", "--positions", "--top-k"}
    run_only = opts["topk-depth"] - grid_flags - sweep_flags - {"--array-job", "--array-unit", "--check"}
    assert {"--device-map", "--agent-runs", "--grader-runs", "--llm-timeout", "--cache-dir", "--results-dir"} <= run_only
    for experiment in ("mix-ratio", "topk-depth", "token-positions", "n-samples"):
        assert opts[experiment] == opts["topk-depth"]
    # a study runs each grid's own values, S, T and K and no array task; everything else is the same
    assert opts["study"] == opts["topk-depth"] - sweep_flags - {"--array-job", "--array-unit"} | {"--experiments"}
    for command in ("grid", "status", "show"):
        assert grid_flags | sweep_flags <= opts[command], command
    assert {"--results-dir", "--judge", "--drop-bos"} <= opts["status"] & opts["show"]


@pytest.mark.parametrize("flag", ["--results-dir", "--output-dir", "--cache-dir"])
def test_an_empty_folder_is_refused(flag: str) -> None:
    line = _one_line_error(run("topk-depth", flag, "", "--check"))
    assert f"'{flag}': an empty path" in line


def test_grid_needs_an_experiment_unless_listing() -> None:
    line = _one_line_error(run("grid"))  # as typer words a missing argument (the program is "-c" here)
    assert line.startswith("error: Missing argument 'experiment'. (see ") and line.endswith(" grid --help)")


def test_a_fifth_experiment_yaml_is_a_new_command(tmp_path: Path) -> None:
    env = {"LOGITDIFF_CONFIGS": str(configs_with_extra_experiment(tmp_path))}
    listed = run("grid", "--list", env=env).stdout
    assert listed == LISTED.replace("--top-k\n", f"--top-k\n{EXTRA}\t--top-k\n")
    assert run(EXTRA, "--check", env=env).stdout.strip() == f"ok: {EXTRA}, 3 cells"
    assert run("grid", EXTRA, "--count", env=env).stdout.strip() == "3"
    assert "--top-k cannot be set for topk-shallow" in _one_line_error(run(EXTRA, "--top-k", "4", env=env))
    assert f"{EXTRA} 3 cells" in run("study", "--seeds", "7", "--check", env=env).stdout
    assert f" {EXTRA} " in run("--help", env={**env, "COLUMNS": "200"}).stdout


def test_broken_configs_are_one_line_errors(tmp_path: Path) -> None:
    configs = configs_with_extra_experiment(tmp_path)
    (configs / "experiments" / "topk_shallow.yaml").write_text("name: [")
    env = {"LOGITDIFF_CONFIGS": str(configs)}
    for args in (["--help"], ["grid", "--list"], ["topk-depth", "--check"]):
        assert "topk_shallow.yaml: not valid YAML" in _one_line_error(run(*args, env=env))
