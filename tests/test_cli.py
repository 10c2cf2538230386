"""The CLI surface: grid listing, one-line errors with exit code 2, array-id errors."""

import json
import os
import subprocess
import sys

import pytest


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
    assert run("grid", "n-samples", "--seeds", "42", "--values", "10,50", "--count").stdout.strip() == "2"


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


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
