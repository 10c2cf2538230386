"""Faults a new user meets (issue 17, items 2, 3, 4, 8), each reproduced with real files and real CLI runs.

- 2: a judge that leaves most labels UNKNOWN gives a failed list, not a 0 % measurement;
- 3: corrupt or stale side files (counters, pass record, FAILED.json) are detected and redone;
- 4: bad input ends in one line and exit code 2 before any model loads or anything is written;
- 8: JSON results follow the user's umask; console failure lines keep their `[…]` prefixes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_relevance import grade, judge_for, make_list, shown_tokens

from logitdiff.core.atomic import write_json
from testkit.openai_server import ChatServer, SeenRequest, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup

# The reduced topk-depth grid of these tests: 2 seeds x 3 K values = 6 LogitDiff cells, 2 passes.
GRID = ["--seeds", "42,1042", "--values", "1,3,10", "--samples", "4", "--positions", "6"]
N_CELLS = 6


@pytest.fixture(scope="module")
def judge_server() -> Iterator[ChatServer]:
    server = ChatServer(handler=scripted_judge)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cli(tiny: TinySetup, *args: str, umask: int | None = None, as_unprivileged_root: bool = False,
        cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from logitdiff.cli import main; main()", *args]
    if as_unprivileged_root:
        # Root ignores file modes; without CAP_DAC_OVERRIDE it obeys them like any user.
        command = ["setpriv", "--bounding-set=-dac_override", *command]
    return subprocess.run(
        command, env={**tiny.env, "COLUMNS": "250", **({"LOGITDIFF_CACHE": str(cache)} if cache else {})}, capture_output=True, text=True, timeout=600,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),  # the child only: the test process keeps its umask
    )


def experiment_args(root: Path, judge: ChatServer, experiment: str = "topk-depth", grid: list[str] = GRID) -> list[str]:
    return [
        experiment, "--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--mode", "diffing", *grid,
        "--judge", f"vllm/scripted-judge@{judge.base_url}", "--results-dir", str(root / "results"),
        "--output-dir", str(root / "outputs"),
    ]


def status_counts(tiny: TinySetup, results: Path, judge: ChatServer) -> dict[str, int]:
    res = cli(tiny, "status", "topk-depth", "--model", TINY_MODEL, "--organism", TINY_ORGANISM, *GRID,
              "--results-dir", str(results), "--judge", f"vllm/scripted-judge@{judge.base_url}")
    assert res.returncode == 0, res.stderr[-3000:]
    last = [ln for ln in res.stdout.splitlines() if ln.strip()][-1]
    return {k: int(v) for k, v in (part.split(": ") for part in last.split(", "))}


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    return lines[0]


def outputs(root: Path, experiment: str = "topk_depth") -> Path:
    return root / "outputs" / experiment / TINY_MODEL / TINY_ORGANISM


@pytest.fixture(scope="module")
def finished(tiny: TinySetup, judge_server: ChatServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny topk-depth run (results and outputs), copied by each test that damages it."""
    root = tmp_path_factory.mktemp("finished")
    res = cli(tiny, *experiment_args(root, judge_server))
    assert res.returncode == 0, res.stderr[-3000:]
    return root


@pytest.fixture
def damaged(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished / "results", tmp_path / "results")
    return tmp_path


def cell_dirs(results: Path) -> list[Path]:
    """The 6 LogitDiff cell folders, seed 42 first, K ascending."""
    dirs = [p.parent for p in results.rglob("orderings.json")]
    return sorted(dirs, key=lambda d: (int(d.parent.parent.name.removeprefix("seed")), int(d.name.split("_K")[1])))


# ---- item 2: a list the judge could not answer ------------------------------------------------------


def weak_judge(request: SeenRequest) -> str:
    """Like a small local model that ignores the format: labels only the first two shown candidates."""
    return "I think these relate to baking.\nANSWER[1]: RELEVANT\nANSWER[2]: IRRELEVANT"


def test_mostly_unknown_list_is_failed_not_zero(tiny: TinySetup, judge_server: ChatServer, tmp_path: Path) -> None:
    judge_server.reset(weak_judge)
    try:
        # Its own response cache: the weak answers must not be served to the other tests' identical requests.
        res = cli(tiny, *experiment_args(tmp_path, judge_server), cache=tmp_path / "cache")
    finally:
        judge_server.reset(scripted_judge)
    assert res.returncode == 1, res.stderr[-3000:]  # failed lists make the run exit non-zero
    records = json.loads((outputs(tmp_path) / "token_relevance_results.json").read_text())
    assert len(records) == 2 * N_CELLS
    for rec in records:
        n = len(rec["tokens"])
        unknown = [t for t in rec["tokens"] if t["label"] == "UNKNOWN"]
        # Each ordering labels 2 shown candidates, so at most 6 of n candidates get any vote.
        assert n > 12 and rec["n_unknown"] == len(unknown) >= n - 6
        assert rec["failed"] == f"judge could not label {len(unknown)} of {n}"
        assert rec["percentage"] is None and rec["weighted_percentage"] is None
    missing = json.loads((outputs(tmp_path) / "missing.json").read_text())
    assert len(missing) == 2 * N_CELLS and all("judge could not label" in m for m in missing)
    summary = [ln for ln in res.stderr.splitlines() if "lists the judge could not label" in ln]
    assert len(summary) == 1 and summary[0].split()[-2] == str(2 * N_CELLS), summary
    # item 8: the failure lines keep their '[relevance …]' prefix (rich markup used to swallow it)
    assert res.stderr.count("[relevance top_k_occurring]: judge could not label") == N_CELLS


def test_unknown_share_threshold_is_more_than_half(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens the judge never answers stay UNKNOWN in every ordering: 2 of 4 is still a measurement, 3 of 4 is not."""
    answered = {" cake", " oven"}
    chat_server.reset(lambda req: "\n".join(
        f"ANSWER[{i}]: {'RELEVANT' if t == ' cake' else 'IRRELEVANT'}" for i, t in enumerate(shown_tokens(req), start=1) if t in answered))
    half, most = grade(judge_for(chat_server, None, monkeypatch),
                       [make_list("half", [" cake", " oven", " x", " y"]), make_list("most", [" cake", " x", " y", " z"])])
    assert half.failed is None and half.metrics is not None
    assert (half.metrics.n_unknown, half.metrics.percentage) == (2, 25.0)
    assert most.failed == "judge could not label 3 of 4" and most.metrics is not None and most.metrics.n_unknown == 3


# ---- item 3: corrupt and stale side files ---------------------------------------------------------


def test_truncated_counters_and_pass_record_are_seen_by_status_and_redone(
    tiny: TinySetup, judge_server: ChatServer, damaged: Path,
) -> None:
    dirs = cell_dirs(damaged / "results")
    counters, record = dirs[1] / "counters.safetensors", dirs[4] / "pass_record.json"
    good_counters = counters.read_bytes()
    counters.write_bytes(good_counters[: len(good_counters) // 2])
    record.write_text(record.read_text()[:40])
    assert status_counts(tiny, damaged / "results", judge_server) == {"corrupt": 2, "done": N_CELLS - 2}

    res = cli(tiny, *experiment_args(damaged, judge_server))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("unreadable result, redoing") == 2
    assert counters.read_bytes() == good_counters  # the same pass again gives the same counts
    assert json.loads(record.read_text())["seed"] == 1042
    assert status_counts(tiny, damaged / "results", judge_server) == {"done": N_CELLS}


def test_random_bytes_in_failed_json_do_not_crash_plotting_or_status(
    tiny: TinySetup, judge_server: ChatServer, damaged: Path,
) -> None:
    cell = cell_dirs(damaged / "results")[2]
    (cell / "orderings.json").unlink()  # the cell's pass "failed": no method result, only FAILED.json
    shutil.rmtree(cell / "relevance")
    (cell / "FAILED.json").write_bytes(b"\xff\xfe\x00garbage" + os.urandom(64))

    res = cli(tiny, *experiment_args(damaged, judge_server), "--mode", "plotting")
    assert res.returncode == 0, res.stderr[-3000:]
    missing = json.loads((outputs(damaged) / "missing.json").read_text())
    assert len(missing) == 1 and "#2 seed=42 top_k=10" in missing[0] and "unreadable FAILED.json" in missing[0]
    assert status_counts(tiny, damaged / "results", judge_server) == {"done": N_CELLS - 1, "failed": 1}


def test_stale_failed_json_beside_a_finished_cell_is_ignored_and_removed(
    tiny: TinySetup, judge_server: ChatServer, damaged: Path,
) -> None:
    cell = cell_dirs(damaged / "results")[0]
    cell_doc = json.loads((cell / "orderings.json").read_text())["cell"]
    write_json(cell / "FAILED.json", {"cell": cell_doc, "stage": "pass", "reason": "out of GPU memory (an old run)"})
    assert status_counts(tiny, damaged / "results", judge_server) == {"done": N_CELLS}

    res = cli(tiny, *experiment_args(damaged, judge_server))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (cell / "FAILED.json").exists()
    assert "cells reused" in res.stderr and json.loads((outputs(damaged) / "missing.json").read_text()) == []


# ---- item 4: bad input, one line, exit 2, nothing loaded or written ---------------------------------


def _bad_corpus(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    good = '{"text": "A cake is baked in an oven for an hour."}\n' if name.endswith(".jsonl") else "A cake is baked.\n"
    bad = b'{"text": "caf\xe9 au lait"}\n' if name.endswith(".jsonl") else b"caf\xe9 au lait\n"
    path.write_bytes(good.encode() * 3 + bad)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("seeds", "--seeds must be integers from 0"),
        ("corpus.jsonl", "line 4 is not UTF-8 text (byte 0xe9)"),
        ("corpus.txt", "line 4 is not UTF-8 text (byte 0xe9)"),
        ("device", "--device 'tpu9' is not a device"),
        ("values", "--values is empty"),
        ("results-file", "--results-dir"),
        ("output-file", "--output-dir"),
        ("results-readonly", "--results-dir"),
        ("output-readonly", "--output-dir"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    case: str, expected: str, tiny: TinySetup, judge_server: ChatServer, tmp_path: Path,
) -> None:
    args = experiment_args(tmp_path, judge_server, grid=["--seeds", "42", "--values", "1", "--samples", "4", "--positions", "6"])
    readonly = case.endswith("readonly")
    if case == "seeds":
        args[args.index("42")] = "-1"
    elif case.startswith("corpus"):
        args += ["--corpus", str(_bad_corpus(tmp_path, case))]
    elif case == "device":
        args += ["--device", "tpu9"]
    elif case == "values":
        args[args.index("1")] = ","
    else:
        flag = "--results-dir" if case.startswith("results") else "--output-dir"
        target = tmp_path / "target"
        if readonly:
            target.mkdir(mode=0o555)
        else:
            target.write_text("a regular file\n")
        args[args.index(flag) + 1] = str(target)
    line = one_line_error(cli(tiny, *args, as_unprivileged_root=readonly and os.geteuid() == 0))
    assert expected in line, line
    if case.startswith(("results", "output")):
        assert ("is a file, not a folder" if case.endswith("file") else "is not writable") in line, line
    # Checked before any model loaded: no pass ran, nothing was stored.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".png")]
    assert written == [], written


def test_empty_values_and_seeds_are_refused_by_grid(tiny: TinySetup) -> None:
    assert "--values is empty" in one_line_error(cli(tiny, "grid", "topk-depth", "--values", ",", "--count"))
    assert "--seeds is empty" in one_line_error(cli(tiny, "grid", "topk-depth", "--seeds", ",", "--count"))


# ---- item 8: file modes and console lines -----------------------------------------------------------


def test_results_follow_umask_and_failure_lines_keep_their_prefix(tiny: TinySetup, judge_server: ChatServer, tmp_path: Path) -> None:
    # T=150: 6 tiny texts have the bytes for it (the check before the run passes) but none has 150
    # tokens, so that cell fails in the pass ('[pass]' line); T=4 succeeds.
    grid = ["--seeds", "42", "--values", "4,150", "--samples", "3", "--top-k", "3"]
    res = cli(tiny, *experiment_args(tmp_path, judge_server, "token-positions", grid), umask=0o027)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "#1 seed=42 positions=150 logitdiff [pass]:" in res.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".png")]
    assert {p.name for p in files} >= {"orderings.json", "pass_record.json", "FAILED.json", "token_relevance_results.json", "missing.json"}
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o640}, modes
