"""The SLURM launchers: their sbatch commands (DRY_RUN), early failures, and real runs on a local SLURM."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from extra_experiment import EXTRA, configs_with_extra_experiment
from slurm_cluster import SlurmCluster

from logitdiff.config.loader import Registry
from logitdiff.core.atomic import read_json
from logitdiff.experiments.grid import GridOptions, expand
from logitdiff.registry import method_result, results_store
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup, build_tiny_setup

REPO = Path(__file__).resolve().parents[1]
ARRAY = REPO / "launch_array_experiments.sh"
ALL = REPO / "launch_all_experiments.sh"
VENV_BIN = str(Path(sys.executable).parent)


def configured_experiments(env: dict[str, str] | None = None) -> dict[str, str]:
    """`logitdiff grid --list`: experiment -> the option it sweeps, in the order the launchers submit."""
    done = subprocess.run([f"{VENV_BIN}/logitdiff", "grid", "--list"], capture_output=True, text=True, check=True, env=env)
    return dict(line.split("\t") for line in done.stdout.splitlines())


SWEPT_FLAG = configured_experiments()
EXPERIMENTS = tuple(SWEPT_FLAG)

# Reduced grids for the tiny model: one seed, two values each. n-samples runs at T=100: its value 10 asks
# for more texts of 100 tokens than the 24-text corpus has (5), so that cell fails for real in the pass
# (17 texts have the bytes for 100 tokens, so the corpus check before the run lets it through).
COMMON_ARGS = ["--seeds", "42", "--samples", "4", "--positions", "6", "--top-k", "5", "--judge", "offline"]
PER_EXPERIMENT_ARGS = {
    "MIX_RATIO_ARGS": "--values default,mix1-0p5",
    "TOPK_DEPTH_ARGS": "--values 5,10",
    "TOKEN_POSITIONS_ARGS": "--values 6,8",
    "N_SAMPLES_ARGS": "--values 4,10 --positions 100",
}
VALUES = {"mix-ratio": "default,mix1-0p5", "topk-depth": "5,10", "token-positions": "6,8", "n-samples": "4,10"}
TOO_BIG_SAMPLES = 10
N_SAMPLES_POSITIONS = 100


def launch(script: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def dry_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPUS", "EXPERIMENTS", "ARRAY", "EXTRA_SBATCH_FLAGS")}
    env.update(DRY_RUN="1", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
    return env


def sbatch_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("sbatch ")]


def grid_count(experiment: str, *args: str) -> int:
    done = subprocess.run([f"{VENV_BIN}/logitdiff", "grid", experiment, "--count", *args], capture_output=True, text=True, check=True)
    return int(done.stdout)


# ---- the sbatch commands (no SLURM needed) -------------------------------------------------------------


def test_array_dry_run_sizes_arrays_from_the_cli_and_chains_plotting(tmp_path: Path) -> None:
    done = launch(ARRAY, ["gemma3_1B", "cake_bake", "diffing", "--seeds", "42,1042", "--judge", "offline"], dry_env(GPUS="2", CPUS="4", MEM="10G"), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = sbatch_lines(done.stdout)
    assert len(lines) == 2 * len(EXPERIMENTS)
    for i, exp in enumerate(EXPERIMENTS):
        array, plot = lines[2 * i], lines[2 * i + 1]
        n = grid_count(exp, "--seeds", "42,1042")
        assert f"--array=0-{n - 1} " in array
        assert f" {exp} --model gemma3_1B --organism cake_bake --seeds 42,1042 --judge offline --mode diffing --array-job'" in array
        assert "--gres=gpu:2" in array and "--cpus-per-task=4" in array and "--mem=10G" in array
        assert f"--output={tmp_path}/logs/%x_%A_%a.out" in array
        assert f"--dependency=afterany:DRYRUN{2 * i + 1} " in plot
        assert "--gres" not in plot and "--cpus-per-task=1" in plot
        assert plot.endswith("--mode plotting'") and "--array" not in plot
    assert (tmp_path / "logs").is_dir()
    assert "cancel all: scancel DRYRUN1 DRYRUN2" in done.stdout


def test_array_dry_run_sizes_per_pass_arrays() -> None:
    done = launch(ARRAY, ["gemma3_1B", "cake_bake", "--array-unit", "pass"], dry_env(EXPERIMENTS="topk-depth"), REPO)
    assert done.returncode == 0, done.stderr
    array = sbatch_lines(done.stdout)[0]
    assert "--array=0-4 " in array  # 45 cells, one pass per seed
    assert "--array-unit pass" in array and "--mode full --array-job" in array


def test_array_dry_run_takes_several_organisms_in_one_array_per_experiment() -> None:
    """One array per experiment over both organisms' cells; per pass, one task per seed serves both."""
    args = ["gemma3_1B", "cake_bake,fda_approval", "diffing", "--seeds", "42,1042"]
    for unit, tasks in (("cell", 2 * grid_count("mix-ratio", "--seeds", "42,1042")), ("pass", 2)):
        done = launch(ARRAY, [*args, "--array-unit", unit], dry_env(EXPERIMENTS="mix-ratio"), REPO)
        assert done.returncode == 0, done.stderr
        array, plot = sbatch_lines(done.stdout)
        assert f"--array=0-{tasks - 1} " in array
        assert "--organism cake_bake,fda_approval" in array and "--organism cake_bake,fda_approval" in plot
    bad = launch(ARRAY, ["gemma3_1B", "cake_bake,nope"], dry_env(EXPERIMENTS="mix-ratio"), REPO)
    assert bad.returncode == 2 and "unknown organism 'nope'" in bad.stderr and not sbatch_lines(bad.stdout)


def test_gpus_zero_requests_no_gpu_at_all_and_extra_flags_pass_through(tmp_path: Path) -> None:
    env = dry_env(GPUS="0", PARTITION="debug", TIME="00:10:00", EXTRA_SBATCH_FLAGS="--qos=short --account=lab", EXPERIMENTS="n-samples")
    done = launch(ALL, ["gemma3_1B", "cake_bake", "diffing", "--organism-variant", "mix1-1p0"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    (line,) = sbatch_lines(done.stdout)
    assert not re.search(r"--(gres|gpus)", line)
    assert "--partition=debug --time=00:10:00" in line and line.count("--qos=short --account=lab") == 1
    assert "n-samples --model gemma3_1B --organism cake_bake --mode diffing --organism-variant mix1-1p0'" in line


def test_array_override_runs_a_single_test_task() -> None:
    done = launch(ARRAY, ["gemma3_1B", "cake_bake"], dry_env(ARRAY="0-0", EXPERIMENTS="token-positions"), REPO)
    assert done.returncode == 0, done.stderr
    assert "--array=0-0 " in sbatch_lines(done.stdout)[0]
    assert "tasks 0-0 of 35" in done.stdout


def test_swept_option_is_left_out_for_the_experiment_that_sweeps_it() -> None:
    done = launch(ALL, ["gemma3_1B", "cake_bake", "diffing", "--samples", "50", "--top-k", "20"], dry_env(), REPO)
    assert done.returncode == 0, done.stderr
    lines = dict(zip(EXPERIMENTS, sbatch_lines(done.stdout), strict=True))
    assert "--samples 50" not in lines["n-samples"] and "--top-k 20" in lines["n-samples"]
    assert "--top-k 20" not in lines["topk-depth"] and "--samples 50" in lines["topk-depth"]
    assert "note: n-samples sweeps samples" in done.stderr


def test_experiments_and_swept_options_come_from_logitdiff(tmp_path: Path) -> None:
    """A fifth experiment YAML is launched too, without its swept option; an unknown one lists the known."""
    env = dry_env(LOGITDIFF_CONFIGS=str(configs_with_extra_experiment(tmp_path)))
    done = launch(ALL, ["gemma3_1B", "cake_bake", "diffing", "--top-k", "20", "--seeds", "7"], env, REPO)
    assert done.returncode == 0, done.stderr
    lines = dict(zip(configured_experiments(env), sbatch_lines(done.stdout), strict=True))
    assert f" {EXTRA} --model gemma3_1B --organism cake_bake --mode diffing --seeds 7'" in lines[EXTRA]
    assert f"note: {EXTRA} sweeps top-k; --top-k is not passed to it" in done.stderr
    unknown = launch(ALL, ["gemma3_1B", "cake_bake"], dry_env(EXPERIMENTS="topk-depth nope"), REPO)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == f"error: EXPERIMENTS: unknown experiment 'nope' (known: {' '.join(EXPERIMENTS)})"


def test_adl_readout_sizes_the_array() -> None:
    done = launch(ARRAY, ["gemma3_1B", "cake_bake", "diffing", "--adl-readout", "both"], dry_env(EXPERIMENTS="mix-ratio"), REPO)
    assert done.returncode == 0, done.stderr
    assert "--array=0-74 " in sbatch_lines(done.stdout)[0]  # 5 seeds x 5 variants x (LogitDiff + 2 ADL readouts)


def test_plotting_mode_submits_only_gpu_free_plotting_jobs() -> None:
    done = launch(ARRAY, ["gemma3_1B", "cake_bake", "plotting"], dry_env(), REPO)
    assert done.returncode == 0, done.stderr
    lines = sbatch_lines(done.stdout)
    assert len(lines) == len(EXPERIMENTS)
    assert all("--mode plotting" in line and "--gres" not in line and "--dependency" not in line for line in lines)


@pytest.mark.parametrize("script", [ARRAY, ALL], ids=["array", "all"])
def test_bad_options_submit_nothing(script: Path) -> None:
    done = launch(script, ["gemma3_1B", "cake_bake", "diffing", "--seeds", "4x2"], dry_env(), REPO)
    assert done.returncode == 2
    assert not sbatch_lines(done.stdout)
    assert "--seeds expects comma-separated integers" in done.stderr


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["--seed", "42"], {}, "mix-ratio: No such option: --seed (Possible options: --seeds)"),
        (["--top-k", "300000"], {}, "mix-ratio: K=300000 exceeds the vocabulary of gemma3_1B (262144 tokens)"),
        ([], {"TOPK_DEPTH_ARGS": "--values 5,300000"}, "topk-depth: K=300000 exceeds the vocabulary of gemma3_1B"),
        (["--judge", "offline", "--mode"], {}, "mix-ratio: Option '--mode' requires an argument"),
    ],
    ids=["misspelled-option", "k-above-vocabulary", "k-above-vocabulary-one-experiment", "missing-value"],
)
def test_array_launcher_checks_every_option_before_submitting(args: list[str], extra_env: dict[str, str], message: str, tmp_path: Path) -> None:
    # A fake sbatch that records any call: none may happen.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls"
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    env = {**dry_env(**extra_env), "PATH": f"{bin_dir}{os.pathsep}{dry_env()['PATH']}"}
    for dry in ("1", "0"):
        env["DRY_RUN"] = dry
        done = launch(ARRAY, ["gemma3_1B", "cake_bake", "diffing", *args], env, tmp_path)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert not sbatch_lines(done.stdout) and not calls.exists()
        lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("note:")]
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), done.stderr


@pytest.mark.parametrize("args", [["gemma3_1B"], ["gemma3_1B", "cake_bake", "fast"]], ids=["too-few", "bad-mode"])
def test_usage_errors(args: list[str]) -> None:
    done = launch(ARRAY, args, dry_env(), REPO)
    assert done.returncode == 2
    assert "usage:" in done.stderr or "MODE must be full, diffing or plotting" in done.stderr


@pytest.mark.parametrize("script", [ARRAY, ALL], ids=["array", "all"])
def test_missing_logitdiff_fails_early(script: Path) -> None:
    done = launch(script, ["gemma3_1B", "cake_bake"], dry_env(LOGITDIFF="logitdiff-not-installed"), REPO)
    assert done.returncode == 2
    assert "'logitdiff-not-installed' not found" in done.stderr


@pytest.mark.parametrize("script", [ARRAY, ALL], ids=["array", "all"])
def test_missing_sbatch_fails_early(script: Path, tmp_path: Path) -> None:
    # A PATH holding only what the scripts use besides sbatch.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "basename", "mkdir", "tr", "logitdiff"):
        found = shutil.which(tool, path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    env = {**dry_env(), "PATH": str(bin_dir)}
    del env["DRY_RUN"]
    done = subprocess.run([shutil.which("bash") or "/bin/bash", str(script), "gemma3_1B", "cake_bake"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert "'sbatch' not found" in done.stderr
    assert not (tmp_path / "logs").exists()


# ---- real runs on a local SLURM -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinySetup]:
    yield build_tiny_setup(tmp_path_factory.mktemp("tiny"))


def slurm_env(cluster: SlurmCluster, setup: TinySetup) -> dict[str, str]:
    return {**setup.env, **PER_EXPERIMENT_ARGS, "SLURM_CONF": str(cluster.conf), "GPUS": "0", "CPUS": "1", "MEM": "600M", "PLOT_MEM": "600M", "TIME": "00:15:00"}


def job_ids(out: str) -> dict[str, dict[str, str]]:
    """{experiment: {'array'|'plotting'|'job': id}} from the launcher's output."""
    ids: dict[str, dict[str, str]] = {}
    for exp, kind, jid in re.findall(r"^([a-z-]+): (array job|plotting job|job) (\d+)", out, flags=re.M):
        ids.setdefault(exp, {})[kind.removesuffix(" job") or "job"] = jid
    return ids


def job_log(job: dict[str, str]) -> str:
    path = Path(job["StdOut"])
    return path.read_text(errors="replace")[-3000:] if path.is_file() else f"no log at {path}"


def experiment_cells(setup: TinySetup, experiment: str) -> list:  # type: ignore[type-arg]
    reg = Registry.load(setup.configs)
    opts = {"samples": 4, "positions": N_SAMPLES_POSITIONS if experiment == "n-samples" else 6, "top_k": 5}
    opts.pop(reg.experiment(experiment).swept, None)
    grid = GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42], values=VALUES[experiment].split(","), **opts)  # type: ignore[arg-type]
    return expand(reg, reg.experiment(experiment), grid)


def check_results(setup: TinySetup, results: Path, outputs: Path) -> None:
    """Every cell has its method result and grades, except the one that asks for too many texts;
    every experiment has its plots, and the failing cell is reported missing."""
    store = results_store(results)
    for exp in EXPERIMENTS:
        cells = experiment_cells(setup, exp)
        assert cells
        for cell in cells:
            if exp == "n-samples" and cell.samples == TOO_BIG_SAMPLES:
                assert store.failure(cell).is_file(), cell.label()
                assert not method_result(store, cell).exists()
            else:
                assert method_result(store, cell).is_file(), f"{exp} {cell.label()}"
                # one graded file: the offline judge's
                assert len(list(store.relevance(cell, "offline").parent.glob("*.json"))) == 1, f"{exp} {cell.label()}"
        folder = outputs / exp.replace("-", "_") / TINY_MODEL / TINY_ORGANISM
        for stem in ("token_relevance", "token_relevance_weighted"):
            assert (folder / f"{stem}_corpus.png").stat().st_size > 1000, folder
        records = read_json(folder / "token_relevance_results.json")
        seen = {(r["value"], r["seed"]) for r in records}
        expected = {(c.value, c.seed) for c in cells if not (exp == "n-samples" and c.samples == TOO_BIG_SAMPLES)}
        assert seen == expected, exp
        missing = read_json(folder / "missing.json")
        if exp == "n-samples":
            assert len(missing) == 1 and f"samples={TOO_BIG_SAMPLES}" in missing[0]
        else:
            assert missing == []


@pytest.mark.slurm
@pytest.mark.slow
def test_array_launcher_on_a_real_slurm(slurm_cluster: SlurmCluster, tiny: TinySetup, tmp_path: Path) -> None:
    results, outputs = tmp_path / "results", tmp_path / "outputs"
    args = [TINY_MODEL, TINY_ORGANISM, "diffing", *COMMON_ARGS, "--results-dir", str(results), "--output-dir", str(outputs)]
    done = launch(ARRAY, args, slurm_env(slurm_cluster, tiny), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    ids = job_ids(done.stdout)
    assert set(ids) == set(EXPERIMENTS) and all(set(v) == {"array", "plotting"} for v in ids.values()), done.stdout
    assert f"cancel all: scancel {' '.join(i for v in ids.values() for i in (v['array'], v['plotting']))}" in done.stdout

    jobs = slurm_cluster.wait_for_jobs([i for v in ids.values() for i in v.values()], timeout=900)
    for exp, v in ids.items():
        tasks = {name: f for name, f in jobs.items() if name.startswith(f"{v['array']}_")}
        assert len(tasks) == len(experiment_cells(tiny, exp)), (exp, sorted(tasks))
        plot = jobs[v["plotting"]]
        assert plot["JobState"] == "COMPLETED", (exp, plot["JobState"], plot["Reason"], job_log(plot))
        assert plot["TRES"].startswith("cpu=1,") and "gres" not in plot["TRES"]
        assert plot["StartTime"] >= max(f["EndTime"] for f in tasks.values())
        failed = {name for name, f in tasks.items() if f["JobState"] != "COMPLETED"}
        # The too-large n-samples cell is task 1 (seed-major: value 4, then 10); it exits non-zero.
        assert failed == ({f"{v['array']}_1"} if exp == "n-samples" else set()), (exp, {n: tasks[n]["JobState"] for n in tasks})
    check_results(tiny, results, outputs)
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert len(logs) == len(jobs), logs


@pytest.mark.slurm
@pytest.mark.slow
def test_all_launcher_on_a_real_slurm(slurm_cluster: SlurmCluster, tiny: TinySetup, tmp_path: Path) -> None:
    results, outputs = tmp_path / "results", tmp_path / "outputs"
    args = [TINY_MODEL, TINY_ORGANISM, "diffing", *COMMON_ARGS, "--results-dir", str(results), "--output-dir", str(outputs)]
    done = launch(ALL, args, slurm_env(slurm_cluster, tiny), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    ids = job_ids(done.stdout)
    assert set(ids) == set(EXPERIMENTS) and all(set(v) == {"job"} for v in ids.values()), done.stdout
    jobs = slurm_cluster.wait_for_jobs([v["job"] for v in ids.values()], timeout=900)
    # A grid with a failing cell still plots what it has; its job reports the failure.
    for exp, v in ids.items():
        job = jobs[v["job"]]
        assert job["JobState"] == ("FAILED" if exp == "n-samples" else "COMPLETED"), (exp, job["JobState"], job_log(job))
    check_results(tiny, results, outputs)


@pytest.mark.slurm
def test_rejected_submission_stops_with_a_clear_error(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    env = {**dry_env(PARTITION="no-such-partition", GPUS="0", CPUS="1", MEM="100M"), "SLURM_CONF": str(slurm_cluster.conf)}
    del env["DRY_RUN"]
    done = launch(ARRAY, ["gemma3_1B", "cake_bake", "diffing"], env, tmp_path)
    assert done.returncode == 2
    assert "invalid partition" in done.stderr.lower() and "error: sbatch failed" in done.stderr
    assert slurm_cluster.run(["squeue", "--noheader"]).stdout.strip() == ""
