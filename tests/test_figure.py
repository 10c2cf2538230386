"""The mix-ratio figure (token relevance of both methods and the agent score against a numeric
mix-ratio axis) is drawn from what a mode-full tiny run stored, with a scripted judge, agent and grader."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from logitdiff.config.loader import Registry
from logitdiff.experiments.grid import GridOptions
from logitdiff.experiments.runner import run_experiment
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.report.axis import MIX_RATIO_LABEL, mix_ratio, x_axis
from logitdiff.report.bands import band_stats, relevance_stats
from logitdiff.report.figure import FIGURE_NAME, plot_mix_ratio_figure
from testkit.openai_server import ChatServer, Reply, SeenRequest, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup

pytestmark = pytest.mark.slow  # a real tiny run in mode full
VARIANTS = ["default", "mix1-0p5", "mix1-1p0"]


def test_variant_names_map_to_mix_ratios() -> None:
    assert [mix_ratio(v) for v in ["default", "mix1-0p2", "mix1-0p5", "mix1-1p0", "mix1-1p5", "mix1-2p0", "transcripts_kto"]] == [
        0.0, 0.2, 0.5, 1.0, 1.5, 2.0, None]
    axis = x_axis("variant", ["default", "mix1-0p2", "mix1-2p0"])
    assert axis.scale == "linear" and axis.positions == {"default": 0.0, "mix1-0p2": 0.2, "mix1-2p0": 2.0} and axis.label == MIX_RATIO_LABEL
    assert x_axis("variant", ["default", "transcripts_kto"]).scale == "categorical"  # a name that says no ratio: one slot per value
    assert x_axis("top_k", [5, 100]).scale == "log"


def scripted(request: SeenRequest) -> Reply:
    """Judge, agent and grader on one server, told apart by the requested model name. The agent's FINAL
    depends on what it was shown first, and the grader scores by the facts named, so the methods differ."""
    model = request.body["model"]
    if model == "scripted-judge":
        return scripted_judge(request)
    if model == "scripted-grader":
        text = request.last_user
        return Reply("Names the topic and a fact.\nSCORE: 4" if "(topic and fact)" in text else
                     "Names the exact topic.\nSCORE: 3" if "(topic)" in text else "Rough topic only.\nSCORE: 2")
    if sum(m["role"] == "assistant" for m in request.messages) == 0:
        return Reply('Let me look.\nCALL(ask_model: {"prompts": ["How do I bake a cake?"]})')
    shown = request.messages[1]["content"]
    what = "baking (topic and fact)" if "LogitDiff" in shown else "baking (topic)" if "Activation Difference" in shown else "cooking"
    return Reply(f'FINAL(description: "Finetuned on {what}.")')


def test_mix_ratio_figure_from_a_mode_full_run(tiny: TinySetup, tmp_path: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LOGITDIFF_CONFIGS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, tiny.env[key])
    chat_server.reset(scripted)
    url = chat_server.base_url
    settings = RunSettings(
        experiment="mix-ratio",
        grid=GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42, 1042], values=VARIANTS, samples=3, positions=7, top_k=3),
        mode=Mode.full, results_dir=tmp_path / "results", output_dir=tmp_path / "outputs", cache_dir=tmp_path / "cache", batch_size=2,
        judge=f"vllm/scripted-judge@{url}", agent_llm=f"vllm/scripted-agent@{url}", grader_llm=f"vllm/scripted-grader@{url}", agent_max_new_tokens=3,
    )
    summary = run_experiment(Registry.load(), settings)
    assert not summary.failed and not summary.missing
    folder = tmp_path / "outputs" / "mix_ratio" / TINY_MODEL / TINY_ORGANISM
    relevance = pd.DataFrame(json.loads((folder / "token_relevance_results.json").read_text()))
    agent = pd.DataFrame(json.loads((folder / "agent_results.json").read_text()))
    assert set(agent["method"]) == {"logitdiff", "adl", "blackbox"}
    assert (folder / FIGURE_NAME).is_file()

    # Redrawn from the stored summaries: the same numbers as the single plots, on x = 0, 0.5, 1.0.
    drawn = plot_mix_ratio_figure(relevance, agent, VARIANTS, "mix-ratio · tiny", "judge: scripted", tmp_path / "figure.png")
    pd.testing.assert_frame_equal(drawn.relevance, relevance_stats(relevance, "percentage"))
    pd.testing.assert_frame_equal(drawn.agent, band_stats(agent, ["method", "value"], "score"))
    assert list(drawn.relevance["method"].unique()) == ["logitdiff", "adl"]
    assert set(drawn.agent["value"]) == set(VARIANTS) and (drawn.agent["count"] == 2 * 2 * 2).all()  # seeds x runs x grader runs
    blackbox = drawn.agent[drawn.agent["method"] == "blackbox"]
    assert blackbox["mean"].tolist() == [2.0] * 3
    assert sorted(set(drawn.agent[drawn.agent["method"] != "blackbox"]["mean"])) <= [3.0, 4.0]
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    summary = {(r["method"], r["value"]): r["score"] for r in json.loads((folder / "agent_summary.json").read_text())}
    assert summary == {(r.method, r.value): {"mean": r.mean, "sd": r.std, "points": r.count} for r in drawn.agent.itertuples()}
