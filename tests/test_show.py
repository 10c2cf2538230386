"""Every view prints the numbers the run stored: a real tiny mix-ratio run (two seeds, two variants, both
ADL readouts) graded by a scripted judge whose labels are known (testkit.openai_server.judge_rule),
then `logitdiff show`, `logitdiff report`, token_relevance_summary.json and the plotted numbers are
checked against token_relevance_results.json, recomputed here by hand (population SD, as the plots)."""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.openai_server import ChatServer, Reply, SeenRequest, judge_rule, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup, build_tiny_setup

pytestmark = pytest.mark.slow  # a real tiny run of the CLI

SEEDS = (42, 1042)
VALUES = ("default", "mix1-0p5")
LABELS = {"logitdiff": "LogitDiff TopK", "adl": "ADL logit lens", "adl-patchscope": "ADL patchscope"}
METRICS = ("percentage", "weighted_percentage", "trivial_percentage", "control_percentage")


def judge_and_scales(request: SeenRequest) -> Reply:
    """The scripted judge; it also chooses patchscope scales (always the largest offered one)."""
    if "[TOKENS PER SCALE]" in request.last_user:
        offered = request.last_user.splitlines()[-2].removeprefix("[SCALES] ").split(", ")
        return Reply(f"Largest.\nBEST_SCALER: {offered[-1]}\nTOP_TOKENS: a | b")
    return scripted_judge(request)


def logitdiff(setup: TinySetup, *args: str, expect: int = 0) -> str:
    env = {**setup.env, "COLUMNS": "250"}  # wide enough that no table row wraps
    done = subprocess.run(["logitdiff", *args], env=env, cwd=setup.root, capture_output=True, text=True, timeout=600)
    assert done.returncode == expect, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def rows(text: str, width: int) -> list[list[str]]:
    """Body rows with `width` cells of every rich table in the output, as stripped cell texts."""
    cut = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    return [r for r in cut if len(r) == width]


class Run:
    def __init__(self, setup: TinySetup, grid: list[str]) -> None:
        self.setup, self.grid = setup, grid
        folder = setup.outputs / "mix_ratio" / TINY_MODEL / TINY_ORGANISM
        self.folder = folder
        self.records: list[dict] = json.loads((folder / "token_relevance_results.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    server = ChatServer()
    server.start()
    server.reset(judge_and_scales)
    try:
        setup = build_tiny_setup(tmp_path_factory.mktemp("views"))
        grid = ["--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--seeds", ",".join(map(str, SEEDS)), "--values", ",".join(VALUES),
                "--samples", "3", "--positions", "7", "--top-k", "3", "--results-dir", str(setup.results)]
        logitdiff(setup, "mix-ratio", *grid, "--mode", "diffing", "--adl-readout", "both", "--output-dir", str(setup.outputs),
                  "--judge", f"vllm/scripted-judge@{server.base_url}")
        yield Run(setup, [*grid, "--judge", f"vllm/scripted-judge@{server.base_url}"])
    finally:
        server.stop()


def plotted_method(r: dict) -> str:
    return "adl-patchscope" if r["method"] == "adl" and r["readout"] == "patchscope" else r["method"]


def list_of(r: dict) -> str:
    return f"position {r['position']}" if r["method"] == "adl" else r["ordering"]


def fmt(points: list[float]) -> str:
    if not points:
        return "–"
    mean = f"{statistics.fmean(points):.1f}"
    return mean if len(points) == 1 else f"{mean} ± {statistics.pstdev(points):.1f}"


def grouped(records: list[dict], key: Callable[[dict], tuple | None], column: str) -> dict[tuple, list[float]]:
    out: dict[tuple, list[float]] = {}
    for r in records:
        if r["failed"] is None and r[column] is not None and (k := key(r)) is not None:
            out.setdefault(k, []).append(r[column])
    return out


def plotted_key(r: dict) -> tuple | None:
    return (plotted_method(r), r["value"]) if r["method"] == "adl" or r["ordering"] == "top_k_occurring" else None


def test_the_run_has_known_labels_that_differ_by_seed(run: Run) -> None:
    assert len(run.records) == len(SEEDS) * len(VALUES) * (2 + 5 + 5)  # LogitDiff 2 orderings, ADL 5 positions per readout
    for r in run.records:
        assert r["failed"] is None and [t["label"] for t in r["tokens"]] == [judge_rule(t["token"]) for t in r["tokens"]]
        assert r["percentage"] == pytest.approx(100 * sum(t["label"] == "RELEVANT" for t in r["tokens"]) / len(r["tokens"]))
    by_seed = grouped(run.records, lambda r: (plotted_method(r), list_of(r), r["value"]), "percentage")
    assert any(len(set(p)) > 1 for p in by_seed.values()), "the seeds graded alike: the SD checks below would test nothing"
    percentages = [r["percentage"] for r in run.records]
    assert max(percentages) > 0 and min(percentages) < 100  # not all zeros: a ×100 or a sum would show


def test_show_prints_the_stored_numbers(run: Run) -> None:
    out = logitdiff(run.setup, "show", "mix-ratio", *run.grid)
    # 1. As plotted: per method and value, over seeds (LogitDiff) or seeds x positions (ADL).
    expected_plotted = {}
    for column in METRICS:
        for (method, value), pts in grouped(run.records, plotted_key, column).items():
            expected_plotted.setdefault((LABELS[method], value), {})[column] = (len(pts), fmt(pts))
    shown = {(r[0], r[1]): r[2:] for r in rows(out, 7)}
    assert shown == {k: [str(v["percentage"][0]), *(v.get(c, (0, "–"))[1] for c in METRICS)] for k, v in expected_plotted.items()}, out
    assert {k[0] for k in shown} == set(LABELS.values())
    # 2. Per graded list, over seeds.
    expected_lists = {}
    for column in METRICS:
        for (method, name, value), pts in grouped(run.records, lambda r: (plotted_method(r), list_of(r), r["value"]), column).items():
            expected_lists.setdefault((LABELS[method], name, value), {})[column] = (len(pts), fmt(pts))
    lists = {(r[0], r[1], r[2]): r[3:] for r in rows(out, 8)}
    assert lists == {k: [str(v["percentage"][0]), *(v.get(c, (0, "–"))[1] for c in METRICS)] for k, v in expected_lists.items()}, out
    # 3. Each graded list's own percentage and tokens (main ordering and every ADL list, each readout labelled).
    for r in run.records:
        heading = f"seed {r['seed']} · variant={r['value']} · {LABELS[plotted_method(r)]} {list_of(r)} · {r['percentage']:.1f}% relevant"
        assert (heading in out) == (r["method"] == "adl" or r["ordering"] == "top_k_occurring"), heading
    assert len(rows(out, 4)) == sum(len(r["tokens"]) for r in run.records if r["method"] == "adl" or r["ordering"] == "top_k_occurring")


def test_show_adl_readout_selects_a_readout(run: Run) -> None:
    out = logitdiff(run.setup, "show", "mix-ratio", *run.grid, "--adl-readout", "patchscope", "--method", "adl", "--seed", "1042")
    assert {r[0] for r in rows(out, 8)} == {"ADL patchscope"}
    assert "ADL logit lens" not in out and out.count("· ADL patchscope position ") == len(VALUES) * 5


def test_summary_json_holds_the_plotted_numbers(run: Run) -> None:
    summary = json.loads((run.folder / "token_relevance_summary.json").read_text())
    got = {(s["method"], s["value"]): s for s in summary}
    for column in METRICS:
        expected = grouped(run.records, plotted_key, column)
        assert {k for k, s in got.items() if column in s} == set(expected)
        for key, pts in expected.items():
            assert got[key][column] == {"mean": pytest.approx(statistics.fmean(pts)), "sd": pytest.approx(statistics.pstdev(pts)), "points": len(pts)}
            assert got[key]["label"] == LABELS[key[0]]


def test_report_md_prints_the_plotted_numbers(run: Run) -> None:
    out = logitdiff(run.setup, "report", "mix-ratio", "--output-dir", str(run.setup.outputs), "--format", "md")
    expected = grouped(run.records, plotted_key, "percentage")
    header = next(line for line in out.splitlines() if line.startswith("| variant"))
    methods = [h.strip().removesuffix(" %") for h in header.strip("|").split("|")[1:]]
    assert methods == ["LogitDiff TopK", "ADL logit lens", "ADL patchscope"]
    tables: list[dict[str, list[str]]] = []  # each "| variant" header starts a table
    for line in out.splitlines():
        if line.startswith("| variant"):
            tables.append({})
        elif line.startswith("| "):
            tables[-1][line.strip("|").split("|")[0].strip()] = [c.strip() for c in line.strip("|").split("|")[1:]]
    method_of = {v: k for k, v in LABELS.items()}
    own, control = tables  # the relevance table, then its negative control
    assert own == {v: [fmt(expected[(method_of[m], v)]) for m in methods] for v in VALUES}, out
    expected_control = grouped(run.records, plotted_key, "control_percentage")
    assert control == {v: [fmt(expected_control.get((method_of[m], v), [])) for m in methods] for v in VALUES}, out
    assert f"graded against the description of {run.records[0]['control_organism']}, %" in out
    plotted = [t for r in run.records if r["failed"] is None and plotted_key(r) is not None for t in r["tokens"]]
    relevant = sum(t["control_label"] == "RELEVANT" for t in plotted)
    assert 0 < relevant < len(plotted)  # the scripted control labels some tokens of each kind
    assert f"the judge called {relevant} of the {len(plotted)} tokens of these lists relevant ({100 * relevant / len(plotted):.1f} %)" in out
    assert "Judge vllm/scripted-judge; seeds 42, 1042" in out
    lists = logitdiff(run.setup, "report", "study", "--output-dir", str(run.setup.outputs), "--lists")
    first = next(r for r in run.records if r["readout"] == "patchscope" and r["position"] == 1 and r["seed"] == 42 and r["value"] == "default")
    assert f"- position 1 ({first['percentage']:.1f} %): " in lists and "default, ADL patchscope, seed 42:" in lists


def test_report_and_show_errors_are_one_line(run: Run) -> None:
    out = logitdiff(run.setup, "report", "topk-depth", "--output-dir", str(run.setup.outputs), expect=2)
    assert out.strip().startswith("error: no results to report:") and out.count("\n") == 1
    assert logitdiff(run.setup, "report", "study", "--format", "csv", expect=2).strip() == "error: --format must be md or json, got 'csv'"
    out = logitdiff(run.setup, "show", "mix-ratio", *run.grid, "--value", "mix1-9p0", expect=2)
    assert out.strip().startswith("error: no cell of mix-ratio matches --value mix1-9p0; values: default, mix1-0p5; seeds: 42, 1042")
    assert logitdiff(run.setup, "show", "mix-ratio", *run.grid, "--method", "lens", expect=2).strip() == "error: --method must be one of logitdiff, adl, got 'lens'"
