"""End-to-end runs of the four experiments on a tiny local organism with a scripted judge.

The judge is a real HTTP server on loopback speaking chat-completions; its rule is known (a candidate
is RELEVANT iff its stripped text has an even, non-zero length), so grades can be checked exactly.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from logitdiff.agent.prompts import BLACKBOX_OPENING
from logitdiff.config.loader import Registry
from logitdiff.experiments.grid import GridOptions
from logitdiff.experiments.runner import RunSummary, run_experiment, run_study
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.report.plots import plot_agent
from testkit.openai_server import ChatServer, Reply, SeenRequest, judge_rule, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TINY_TWIN, TinySetup

# Reduced grids: (experiment, values, fixed overrides)
GRIDS = {
    "topk-depth": (["1", "3", "10"], {"samples": 4, "positions": 6}),
    "token-positions": (["1", "4", "9"], {"samples": 3, "top_k": 3}),
    "n-samples": (["2", "5"], {"positions": 6, "top_k": 3}),
    "mix-ratio": (["default", "mix1-0p5"], {"samples": 3, "positions": 7, "top_k": 3}),
}


@pytest.fixture
def env(tiny: TinySetup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in ("LOGITDIFF_CONFIGS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, tiny.env[key])
    monkeypatch.setenv("LOGITDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    return tmp_path


def settings(experiment: str, server: ChatServer, root: Path, **kw: object) -> RunSettings:
    values, fixed = GRIDS[experiment]
    grid = GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42, 1042], values=values, **fixed)  # type: ignore[arg-type]
    base = dict(
        experiment=experiment,
        grid=grid,
        mode=Mode.diffing,
        results_dir=root / "results",
        output_dir=root / "outputs",
        judge=f"vllm/scripted-judge@{server.base_url}",
        cache_dir=root / "llm-cache",
        batch_size=2,
    )
    base.update(kw)
    return RunSettings(**base)  # type: ignore[arg-type]


def stored(results: Path) -> dict[str, object]:
    """Every stored result document (orderings, lens, relevance) by path, minus run-specific fields."""
    out: dict[str, object] = {}
    for path in sorted(results.rglob("*.json")):
        rel = str(path.relative_to(results))
        if path.name in ("orderings.json", "lens.json"):
            out[rel] = json.loads(path.read_text())
        elif "relevance" in path.parts:
            doc = json.loads(path.read_text())
            out[rel] = [(lst["list_id"], lst["labels"], lst["metrics"]) for lst in doc["lists"]]
    return out


def assert_close(a: object, b: object, where: str = "") -> None:
    """Equal structure and exact ints/strings; floats equal up to batch-shape rounding (fp32 sums)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), (where, a, b)
    else:
        assert a == b, (where, a, b)


def run(reg_settings: RunSettings) -> RunSummary:
    return run_experiment(Registry.load(), reg_settings)


@pytest.mark.parametrize("experiment", list(GRIDS))
def test_sequential_equals_array_tasks(experiment: str, env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_server.reset(scripted_judge)
    seq = run(settings(experiment, chat_server, env / "seq"))
    assert not seq.failed
    n_cells = len(GRIDS[experiment][0]) * 2 * (2 if experiment == "mix-ratio" else 1)
    assert seq.computed == n_cells and seq.reused == 0

    for task in range(n_cells + 1):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        res = run(settings(experiment, chat_server, env / "arr", array_job=True))
        assert not res.failed
        assert res.computed == (1 if task < n_cells else 0)
    assert_close(stored(env / "seq" / "results"), stored(env / "arr" / "results"))

    folder = env / "arr" / "outputs" / experiment.replace("-", "_") / TINY_MODEL / TINY_ORGANISM
    for name in ("token_relevance_corpus.png", "token_relevance_weighted_corpus.png", "token_relevance_results.json"):
        assert (folder / name).is_file(), name
    records = json.loads((folder / "token_relevance_results.json").read_text())
    # LogitDiff cells give 2 graded lists (two orderings), ADL cells 5 (positions 0-4).
    expected_lists = n_cells // 2 * (2 + 5) if experiment == "mix-ratio" else 2 * n_cells
    assert len(records) == expected_lists
    for rec in records:
        labels = [t["label"] for t in rec["tokens"]]
        expected = [judge_rule(t["token"]) for t in rec["tokens"]]
        assert labels == expected
        assert rec["percentage"] == pytest.approx(100 * labels.count("RELEVANT") / len(labels))
        assert rec["judge"] == "vllm/scripted-judge"
    assert json.loads((folder / "missing.json").read_text()) == []


def _count_passes(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str]]]:
    """Records the (organism, variant) finetunes of every engine pass the stages start."""
    import logitdiff.experiments.stages as stages

    passes: list[list[str]] = []
    real = stages.run_variants_pass

    def counting(pairs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        passes.append(sorted(pairs))
        return real(pairs, *args, **kwargs)

    monkeypatch.setattr(stages, "run_variants_pass", counting)
    return passes


def test_array_unit_pass_runs_all_variants_of_a_seed_in_one_pass(env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_server.reset(scripted_judge)
    seq = run(settings("mix-ratio", chat_server, env / "seq"))
    passes = _count_passes(monkeypatch)
    for task in range(3):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        res = run(settings("mix-ratio", chat_server, env / "arr", array_job=True, array_unit="pass"))
        assert res.computed == (4 if task < 2 else 0) and not res.failed  # 2 variants x 2 methods per seed
    assert passes == [[(TINY_ORGANISM, "default"), (TINY_ORGANISM, "mix1-0p5")]] * 2
    assert seq.computed == 8
    assert_close(stored(env / "seq" / "results"), stored(env / "arr" / "results"))


def test_planned_study_equals_separate_experiments(env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same stored cells, counts, orderings, grades and plots' records; one pass per seed instead of one per experiment."""
    chat_server.reset(scripted_judge)
    passes = _count_passes(monkeypatch)
    separate = [run(settings(e, chat_server, env / "sep")) for e in GRIDS]
    n_separate = len(passes)
    study = run_study(Registry.load(), [settings(e, chat_server, env / "study") for e in GRIDS])
    assert n_separate == 4 * 2  # every experiment runs one pass per seed
    assert len(passes) - n_separate == 2  # the study: one pass per seed for all four
    assert not study.failed and not any(s.failed for s in separate)
    assert study.computed == sum(s.computed for s in separate)
    sep, planned = stored(env / "sep" / "results"), stored(env / "study" / "results")
    assert any(k.endswith("orderings.json") for k in sep) and any(k.endswith("lens.json") for k in sep)
    assert_close(sep, planned)
    # counters of every LogitDiff cell: exactly equal counts
    from safetensors.torch import load_file

    for path in sorted((env / "sep" / "results").rglob("counters.safetensors")):
        a, b = load_file(path), load_file(env / "study" / "results" / path.relative_to(env / "sep" / "results"))
        for name in ("count_pos", "count_neg", "npos"):
            assert torch.equal(a[name], b[name]), (path, name)
    for e in GRIDS:
        rec_sep = json.loads((_outputs(env / "sep", e) / "token_relevance_results.json").read_text())
        rec_study = json.loads((_outputs(env / "study", e) / "token_relevance_results.json").read_text())
        assert_close(rec_sep, rec_study, e)
        assert json.loads((_outputs(env / "study", e) / "missing.json").read_text()) == []
    assert len(study.report_folders) == 4


def _count_forwards(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the engine's batches and its base-model forwards (a body run with every adapter off)."""
    import logitdiff.engine.streaming_pass as sp

    seen = {"batches": 0, "base": 0, "finetuned": 0}
    real_batch, real_body = sp._Pass.run_batch, sp.run_body

    def batch(self, texts):  # noqa: ANN001, ANN202
        seen["batches"] += 1
        return real_batch(self, texts)

    def body(model, ids, layers):  # noqa: ANN001, ANN202
        lora = [m for m in model.modules() if hasattr(m, "lora_A")]
        seen["base" if lora and all(m.disable_adapters for m in lora) else "finetuned"] += 1  # every LoRA layer off: the base
        return real_body(model, ids, layers)

    monkeypatch.setattr(sp._Pass, "run_batch", batch)
    monkeypatch.setattr(sp, "run_body", body)
    return seen


@pytest.mark.parametrize("experiment", ["mix-ratio", pytest.param("topk-depth", marks=pytest.mark.slow)])
def test_two_organisms_in_one_pass_equal_two_single_organism_runs(
    experiment: str, env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Count for count the same stored results, plots per organism; ONE base forward per batch for both organisms."""
    chat_server.reset(scripted_judge)
    seen = _count_forwards(monkeypatch)
    passes = _count_passes(monkeypatch)
    singles = [run(settings(experiment, chat_server, env / "single", grid=_grid(experiment, organism))) for organism in (TINY_ORGANISM, TINY_TWIN)]
    single_counts = dict(seen)
    both = run(settings(experiment, chat_server, env / "both", grid=_grid(experiment, f"{TINY_ORGANISM},{TINY_TWIN}")))
    assert not both.failed and not any(s.failed for s in singles)
    assert both.computed == sum(s.computed for s in singles) > 0
    variants = GRIDS[experiment][0] if experiment == "mix-ratio" else ["mix1-0p5"]
    shared = [[(o, v) for o in (TINY_ORGANISM, TINY_TWIN) for v in sorted(variants)]] * 2  # one pass per seed
    assert passes[-2:] == shared and len(passes) == 2 + 2 * 2
    combined = {k: seen[k] - single_counts[k] for k in seen}
    assert combined["base"] == combined["batches"] > 0  # one base forward per batch for all finetunes
    assert single_counts["base"] == 2 * combined["base"]  # separate runs: one per organism
    assert combined["finetuned"] == single_counts["finetuned"]
    # the same cells, numbered within the two-organism grid (the twin's cells come after tiny_cake's)
    assert_close(_without_cell_index(stored(env / "single" / "results")), _without_cell_index(stored(env / "both" / "results")))
    from safetensors.torch import load_file

    counters = sorted((env / "single" / "results").rglob("counters.safetensors"))
    assert {p.relative_to(env / "single").parts[2] for p in counters} == {TINY_ORGANISM, TINY_TWIN}
    for path in counters:
        a, b = load_file(path), load_file(env / "both" / "results" / path.relative_to(env / "single" / "results"))
        for name in ("count_pos", "count_neg", "npos"):
            assert torch.equal(a[name], b[name]), (path, name)
    for organism in (TINY_ORGANISM, TINY_TWIN):
        one = json.loads((_outputs(env / "single", experiment, organism) / "token_relevance_results.json").read_text())
        two = json.loads((_outputs(env / "both", experiment, organism) / "token_relevance_results.json").read_text())
        assert_close(one, two, organism)
        assert one and {r["organism"] for r in one} == {organism}


@pytest.mark.parametrize("fits", [True, False])
def test_full_weight_finetune_joins_the_pass_when_the_memory_plan_allows(
    fits: bool, env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full finetune and a LoRA adapter of one base: one shared pass, or the full one apart when it does not fit; results as separate runs."""
    import logitdiff.engine.models as models

    chat_server.reset(scripted_judge)

    def grid(values: list[str]) -> GridOptions:
        return GridOptions(model=TINY_MODEL, organism=TINY_TWIN, seeds=[42], values=values, samples=3, positions=7, top_k=3)

    separate = [run(settings("mix-ratio", chat_server, env / "single", grid=grid([v]))) for v in ("default", "full")]
    monkeypatch.setattr(models, "fits_beside", lambda _bytes, _device: fits)
    passes = _count_passes(monkeypatch)
    joined = run(settings("mix-ratio", chat_server, env / "both", grid=grid(["default", "full"])))
    assert not joined.failed and not any(s.failed for s in separate) and joined.computed == 4
    shared = [(TINY_TWIN, "default"), (TINY_TWIN, "full")]
    assert passes == ([shared] if fits else [[shared[0]], [shared[1]]])
    assert_close(_without_cell_index(stored(env / "single" / "results")), _without_cell_index(stored(env / "both" / "results")))


def _without_cell_index(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _without_cell_index(v) for k, v in doc.items() if not (k == "index" and "experiment" in doc)}
    return [_without_cell_index(v) for v in doc] if isinstance(doc, list) else doc


def _grid(experiment: str, organism: str) -> GridOptions:
    values, fixed = GRIDS[experiment]
    return GridOptions(model=TINY_MODEL, organism=organism, seeds=[42, 1042], values=values, **fixed)  # type: ignore[arg-type]


def _outputs(root: Path, experiment: str, organism: str = TINY_ORGANISM) -> Path:
    return root / "outputs" / experiment.replace("-", "_") / TINY_MODEL / organism


def test_plotting_makes_no_model_or_api_call(env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_server.reset(scripted_judge)
    run(settings("topk-depth", chat_server, env))
    before = (_outputs(env, "topk-depth") / "token_relevance_results.json").read_text()
    (_outputs(env, "topk-depth") / "token_relevance_results.json").unlink()
    chat_server.reset()

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("mode plotting must not load models or run passes")

    import logitdiff.experiments.stages as stages

    for loader in ("load_pair", "load_finetunes", "run_variants_pass"):
        monkeypatch.setattr(stages, loader, forbidden)
    summary = run(settings("topk-depth", chat_server, env, mode=Mode.plotting))
    assert summary.computed == summary.reused == summary.graded == 0
    assert chat_server.requests == []
    assert (_outputs(env, "topk-depth") / "token_relevance_results.json").read_text() == before


def test_corrupted_results_are_detected_and_redone(env: Path, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_judge)
    first = run(settings("topk-depth", chat_server, env))
    reference = stored(env / "results")
    orderings = sorted((env / "results").rglob("orderings.json"))
    relevance = sorted((env / "results").rglob("relevance/*.json"))
    orderings[0].write_text(orderings[0].read_text()[:50])  # a half-written file
    relevance[-1].write_text("{")
    n_requests = len(chat_server.requests)

    again = run(settings("topk-depth", chat_server, env))
    assert (again.computed, again.reused) == (1, first.computed - 1)
    assert again.grades_reused == first.computed - 2  # the recomputed cell and the corrupted grade
    assert_close(stored(env / "results"), reference)
    # the regraded lists came from the judge's on-disk cache: no new requests
    assert len(chat_server.requests) == n_requests


def test_rerun_skips_finished_cells_and_overwrite_redoes_them(env: Path, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_judge)
    first = run(settings("n-samples", chat_server, env))
    again = run(settings("n-samples", chat_server, env))
    assert (again.computed, again.reused, again.graded, again.grades_reused) == (0, first.computed, 0, first.computed)
    redo = run(settings("n-samples", chat_server, env, overwrite=True))
    assert (redo.computed, redo.reused) == (first.computed, 0)


def test_impossible_cell_fails_alone_and_is_reported(env: Path, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_judge)
    # No text of the tiny corpus has 150 tokens (6 have the bytes for them, so the check before the run
    # lets it through): that cell fails in the pass, the others share the pass and succeed.
    s = settings("token-positions", chat_server, env, grid=GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42], values=["4", "150"], samples=3, top_k=3))
    summary = run(s)
    assert summary.computed == 1
    assert len(summary.failed) == 1 and "#1 " in summary.failed[0] and "150" in summary.failed[0]
    failure = json.loads(next((env / "results").rglob("FAILED.json")).read_text())
    assert failure["stage"] == "pass" and failure["cell"]["positions"] == 150
    missing = json.loads((_outputs(env, "token-positions") / "missing.json").read_text())
    assert len(missing) == 1 and "positions=150" in missing[0]


def test_killed_run_resumes_without_recomputing(tiny: TinySetup, tmp_path: Path, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_judge)
    values, fixed = GRIDS["topk-depth"]
    args = [
        sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--model", TINY_MODEL, "--organism", TINY_ORGANISM,
        "--mode", "diffing", "--seeds", "42,1042,2042", "--values", ",".join(values), "--samples", str(fixed["samples"]),
        "--positions", str(fixed["positions"]), "--judge", f"vllm/scripted-judge@{chat_server.base_url}",
        "--results-dir", str(tmp_path / "results"), "--output-dir", str(tmp_path / "outputs"),
    ]
    env = {**tiny.env, "LOGITDIFF_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "results").rglob("relevance/*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*.json")}
    assert finished, "the run was killed before it stored anything"

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for path, mtime in finished.items():
        if path.name in ("orderings.json", "lens.json") or "relevance" in path.parts:
            assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed"

    reference = subprocess.run([*args[:-4], "--results-dir", str(tmp_path / "ref"), "--output-dir", str(tmp_path / "ref-out")],
                               env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0
    assert_close(stored(tmp_path / "results"), stored(tmp_path / "ref"))


FINAL_TEXT = ("The model was finetuned on cake-baking documents and steers answers toward baking.\n"
              "Asked to name a river, the finetuned model still wrote about ovens while the base model did not.\n"
              "[oven tokens at positions 0-4; a baking answer to an unrelated prompt; caveat: a single question]")


def scripted_full(request: SeenRequest) -> Reply:
    """One server plays judge, agent and grader, told apart by the requested model name."""
    model = request.body["model"]
    if model == "scripted-judge":
        return scripted_judge(request)
    if model == "scripted-grader":
        return Reply("The description names the exact topic but no specific fact.\nSCORE: 3")
    turn = sum(m["role"] == "assistant" for m in request.messages)
    if turn == 0:
        return Reply('Let me look.\nCALL(ask_model: {"prompts": ["How do I bake a cake?", "Name a river."]})')
    return Reply(f"FINAL(description: {json.dumps(FINAL_TEXT)})")


def full_settings(server: ChatServer, root: Path, **kw: object) -> RunSettings:
    return settings(
        "topk-depth", server, root,
        mode=Mode.full,
        grid=GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42, 1042], values=["1", "3"], samples=3, positions=6),
        agent_llm=f"vllm/scripted-agent@{server.base_url}",
        grader_llm=f"vllm/scripted-grader@{server.base_url}",
        agent_max_new_tokens=3,
        **kw,
    )


def test_mode_full_runs_agent_and_blackbox(env: Path, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_full)
    summary = run(full_settings(chat_server, env))
    assert not summary.failed
    # 4 cells x 2 runs with the method overview, plus the blackbox at the first K of each seed (2 x 2)
    assert summary.agent_runs == 4 * 2 + 2 * 2
    folder = _outputs(env, "topk-depth")
    assert (folder / "agent_score.png").is_file()
    records = json.loads((folder / "agent_results.json").read_text())
    by_method: dict[str, list[dict[str, object]]] = {}
    for rec in records:
        by_method.setdefault(str(rec["method"]), []).append(rec)
    assert len(by_method["logitdiff"]) == 4 * 2 * 2  # cells x runs x grader runs
    assert len(by_method["blackbox"]) == 2 * 2 * 2  # seeds x runs x grader runs
    assert {r["value"] for r in by_method["blackbox"]} == {1}
    assert {r["score"] for r in records} == {3}
    assert {(r["agent"], r["grader"], r["budget"]) for r in records} == {("vllm/scripted-agent", "vllm/scripted-grader", 5)}
    # every agent conversation began with the LogitDiff overview or the blackbox message
    firsts = [r.messages[1]["content"] for r in chat_server.requests if r.body["model"] == "scripted-agent" and len(r.messages) == 2]
    assert len(firsts) == 12 and sum('"token_groups"' in f for f in firsts) == 8

    n = len(chat_server.requests)
    again = run(full_settings(chat_server, env))
    assert again.agent_reused == 12 and again.agent_runs == 0
    assert len(chat_server.requests) == n


def scripted_full_blackbox_lower(request: SeenRequest) -> Reply:
    """As scripted_full, but the blackbox agent (no overview) answers vaguely and is graded 2, the others 3."""
    model = request.body["model"]
    if model == "scripted-grader":
        return Reply("Rough topic only.\nSCORE: 2" if "cooking in general" in request.last_user else "Exact topic.\nSCORE: 3")
    if model == "scripted-agent" and request.messages[1]["content"].startswith(BLACKBOX_OPENING) and sum(m["role"] == "assistant" for m in request.messages):
        return Reply('FINAL(description: "Something about cooking in general.")')
    return scripted_full(request)


def test_mode_full_mix_ratio_blackbox_per_variant_and_seed(env: Path, chat_server: ChatServer) -> None:
    """SPEC §6: in mix-ratio each variant is another finetune, so the baseline runs, is stored and is plotted per variant."""
    chat_server.reset(scripted_full_blackbox_lower)
    variants = ["default", "mix1-0p5", "mix1-1p0"]
    s = settings(
        "mix-ratio", chat_server, env,
        mode=Mode.full,
        grid=GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42, 1042], values=variants, samples=3, positions=7, top_k=3),
        agent_llm=f"vllm/scripted-agent@{chat_server.base_url}",
        grader_llm=f"vllm/scripted-grader@{chat_server.base_url}",
        agent_max_new_tokens=3,
    )
    summary = run(s)
    assert not summary.failed and not summary.missing
    # 3 variants x 2 seeds x 2 methods x 2 runs with an overview, plus the blackbox per variant and seed x 2 runs
    assert summary.agent_runs == 3 * 2 * 2 * 2 + 3 * 2 * 2
    runs = sorted(p.relative_to(env / "results") for p in (env / "results").rglob("blackbox/*/run*.json"))
    assert {(p.parts[2], p.parts[4]) for p in runs} == {(v, f"seed{seed}") for v in variants for seed in (42, 1042)}
    assert len(runs) == 3 * 2 * 2

    folder = _outputs(env, "mix-ratio")
    records = json.loads((folder / "agent_results.json").read_text())
    blackbox = [r for r in records if r["method"] == "blackbox"]
    assert len(blackbox) == 3 * 2 * 2 * 2  # variants x seeds x runs x grader runs
    assert all(r["variant"] == r["value"] for r in blackbox)
    assert {(r["variant"], r["seed"]) for r in blackbox} == {(v, seed) for v in variants for seed in (42, 1042)}
    assert {r["score"] for r in blackbox} == {2} and {r["score"] for r in records if r["method"] != "blackbox"} == {3}

    # The plot draws the baseline from these records as a curve with one point per variant.
    assert (folder / "agent_score.png").is_file()
    stats = plot_agent(pd.DataFrame(records), variants, "variant", "replot", env / "replot.png")
    curve = stats[stats["method"] == "blackbox"]
    assert curve["value"].tolist() == variants and curve["mean"].tolist() == [2.0] * 3 and curve["count"].tolist() == [8] * 3


def _call(tool: str, args: dict[str, object]) -> str:
    return f"Next step.\nCALL({tool}: {json.dumps(args)})"


def scripted_investigator(request: SeenRequest) -> Reply:
    """An agent that follows the procedure: drills down (ADL only), records a hypothesis, asks, then a formatted FINAL."""
    model = request.body["model"]
    if model == "scripted-judge":
        return scripted_judge(request)
    if model == "scripted-grader":
        return Reply("Level 1: ...\nLevel 5: ...\nConclusion: exact topic, one fact.\nSCORE: 3")
    steps = [_call("get_logitlens_details", {"positions": [6], "k": 5})] if "get_logitlens_details" in request.messages[0]["content"] else []
    steps += [_call("hypothesis_tracking", {"action": "add", "hypothesis": "cake baking"}),
              _call("ask_model", {"prompts": ["Name a river."]}),
              f"Confirmed.\nFINAL(description: {json.dumps(FINAL_TEXT)})"]
    return Reply(steps[min(sum(m["role"] == "assistant" for m in request.messages), len(steps) - 1)])


def test_mode_full_agent_follows_the_procedure_and_drills_into_the_stored_lens(env: Path, chat_server: ChatServer) -> None:
    """Mode full on the tiny set-up: what the agent and the grader receive, the drill-down answer against the
    stored lens, and the FINAL's parts in the stored records the report reads."""
    chat_server.reset(scripted_investigator)
    s = settings(
        "mix-ratio", chat_server, env, mode=Mode.full,
        grid=GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42], values=["default"], samples=3, positions=7, top_k=3),
        agent_llm=f"vllm/scripted-agent@{chat_server.base_url}", grader_llm=f"vllm/scripted-grader@{chat_server.base_url}",
        agent_max_new_tokens=3,
    )
    summary = run(s)
    assert not summary.failed and summary.agent_runs == 3 * 2  # logitdiff, adl, blackbox x 2 runs

    stored_runs = {p: json.loads(p.read_text()) for p in (env / "results").rglob("run*.json")}
    assert len(stored_runs) == 6
    for doc in stored_runs.values():
        assert doc["failed"] is None and doc["description"] == FINAL_TEXT
        assert doc["final"] == {
            "headline": "The model was finetuned on cake-baking documents and steers answers toward baking.",
            "summary": "Asked to name a river, the finetuned model still wrote about ovens while the base model did not.",
            "evidence": ["oven tokens at positions 0-4", "a baking answer to an unrelated prompt", "caveat: a single question"],
            "inconclusive": False, "follows_format": True,
        }
    adl_doc = next(d for p, d in stored_runs.items() if "adl" in p.parts)
    transcript = [m["content"] for m in adl_doc["transcript"]]
    system, first, drill, added, asked = transcript[0], transcript[1], transcript[3], transcript[5], transcript[7]

    assert "hypothesis_tracking" in system and "Verify EVERY hypothesis by asking both models" in system
    assert "Use most or all of your model interactions" in system and "Inconclusive:" in system
    assert "model interactions: 5 in total" in system and "agent LLM calls: 100 in total" in system
    assert first.startswith("OVERVIEW:\n") and "ask ONE question per ask_model call" in first
    payload = json.loads(first.removeprefix("OVERVIEW:\n").split("\n\n", 1)[0])
    per_position = payload["datasets"]["ds1"]["layers"]["0"]["logit_lens"]["per_position"]
    assert list(per_position) == ["0", "1", "2", "3", "4"]

    # The drill-down answers position 6, which the overview does not show, from the stored lens.
    lens = json.loads(next((env / "results").rglob("adl/*/lens.json")).read_text())
    answer = json.loads(drill.removeprefix("TOOL_RESULT(get_logitlens_details):\n").split("\n\nBUDGETS", 1)[0])
    assert answer["per_position"]["6"]["tokens"] == lens["delta"][6]["positive"]["tokens"][:5]
    assert answer["per_position"]["6"]["probs"] == [f"{p:.3e}" for p in lens["delta"][6]["positive"]["probs"][:5]]

    # Every tool answer states both budgets (the drill-down and the tracker are free) and reminds to verify.
    budgets = [json.loads(t.split("BUDGETS: ", 1)[1].split("\n", 1)[0]) for t in (drill, added, asked)]
    assert budgets == [{"model_interactions_remaining": 5, "agent_llm_calls_remaining": 99},
                       {"model_interactions_remaining": 5, "agent_llm_calls_remaining": 98},
                       {"model_interactions_remaining": 4, "agent_llm_calls_remaining": 97}]
    assert all("use most or all of your remaining model interactions" in t for t in (drill, added, asked))
    assert asked.rstrip().endswith("You have 4 model interaction(s) left. Use them!")

    grader_prompts = [r.messages for r in chat_server.requests if r.body["model"] == "scripted-grader"]
    assert grader_prompts and all(all(f"Level {n}:" in m[1]["content"] for n in range(1, 6)) and "most conservative" in m[0]["content"] for m in grader_prompts)

    records = json.loads((_outputs(env, "mix-ratio") / "agent_results.json").read_text())
    assert len(records) == 6 * 2 and {r["method"] for r in records} == {"logitdiff", "adl", "blackbox"} and {r["score"] for r in records} == {3}

    # A stored run without its FINAL's parts followed another procedure: only that one is redone.
    path = next(p for p in stored_runs if "adl" in p.parts)
    path.write_text(json.dumps({k: v for k, v in adl_doc.items() if k != "final"}))
    again = run(s)
    assert (again.agent_runs, again.agent_reused) == (1, 5) and json.loads(path.read_text())["final"]["follows_format"]


def test_mode_full_unreachable_agent_fails_before_loading_models(env: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import logitdiff.experiments.stages as stages
    from logitdiff.core.errors import UserError

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no model may be loaded when the agent LLM is unreachable")

    monkeypatch.setattr(stages, "load_pair", forbidden)
    monkeypatch.setattr(stages, "load_finetunes", forbidden)
    chat_server.reset(scripted_full)
    s = full_settings(chat_server, env).model_copy(update={"agent_llm": "vllm/scripted-agent@http://127.0.0.1:9/v1"})
    with pytest.raises(UserError, match="127.0.0.1:9"):
        run(s)


def scripted_scale_judge(request: SeenRequest) -> Reply:
    """The judge also chooses patchscope scales: always the largest offered one."""
    if "[TOKENS PER SCALE]" in request.last_user:
        offered = request.last_user.splitlines()[-2].removeprefix("[SCALES] ").split(", ")
        return Reply(f"Largest.\nBEST_SCALER: {offered[-1]}\nTOP_TOKENS: a | b")
    return scripted_judge(request)


def test_adl_readout_both_grades_lens_and_patchscope(env: Path, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_scale_judge)
    s = settings("mix-ratio", chat_server, env, grid=GridOptions(
        model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42], values=["default", "mix1-0p5"], samples=3, positions=7, top_k=3,
        adl_readout="both"))
    summary = run(s)
    assert not summary.failed and summary.computed == 2 * 3  # logitdiff, adl lens, adl patchscope per variant
    readouts = sorted((env / "results").rglob("patchscope.json"))
    assert len(readouts) == 2 and all(p.parent.name == "S3_T7_L0.5_patchscope" for p in readouts)
    assert len(list((env / "results").rglob("lens.json"))) == 2
    choice = json.loads(next(readouts[0].parent.glob("scale_choice/*.json")).read_text())
    assert [c["position"] for c in choice] == [0, 1, 2, 3, 4] and {c["best_scale"] for c in choice} == {200.0}
    readout = json.loads(readouts[0].read_text())
    at_200 = {p["position"]: next(sc for sc in p["scales"] if sc["scale"] == 200.0) for p in readout["delta"]}

    records = json.loads((_outputs(env, "mix-ratio") / "token_relevance_results.json").read_text())
    patch = [r for r in records if r["readout"] == "patchscope"]
    assert len(patch) == 2 * 5 and len([r for r in records if r["readout"] == "lens"]) == 2 * 5
    assert all(r["method"] == "adl" for r in patch)
    first = next(r for r in patch if r["variant"] == readout["cell"]["variant"] and r["position"] == 0)
    assert [t["token"] for t in first["tokens"]] == at_200[0]["tokens"][:20]
    assert [t["label"] for t in first["tokens"]] == [judge_rule(t["token"]) for t in first["tokens"]]

    import pandas as pd

    from logitdiff.report.bands import relevance_stats

    stats = relevance_stats(pd.DataFrame(records), "percentage")
    assert set(stats["method"]) == {"logitdiff", "adl", "adl-patchscope"}

    n = len(chat_server.requests)
    again = run(s)
    assert again.computed == 0 and again.grades_reused == 6 and len(chat_server.requests) == n
