"""The NMF ordering through the registry: gathered in the pass, factorised, graded, shown to the agent."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import torch

from logitdiff.engine.streaming_pass import run_pass
from logitdiff.methods.nmf import NmfOptions, TopKMatrix, fit_topics
from logitdiff.registry.nmf import TopKMatrixRequest
from testkit.tiny_experiment import TinySetup
from testkit.tiny_models import english_texts, pair_of, tiny_llama, tiny_tokenizer, write_jsonl

GROUP_A = list(range(40, 48))
GROUP_B = list(range(90, 98))


def _planted_pair() -> object:
    """A finetune whose head raises GROUP_A where the final hidden state points along u and GROUP_B
    where it points against it (each token by its own amount): its diff holds exactly two token groups."""
    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), hidden=32, seed=3)
    ft = copy.deepcopy(base)
    u = torch.nn.functional.normalize(torch.randn(32, generator=torch.Generator().manual_seed(7)), dim=0)
    with torch.no_grad():
        for rank, (a, b) in enumerate(zip(GROUP_A, GROUP_B, strict=True)):
            ft.lm_head.weight[a] += (4.0 - 0.25 * rank) * u
            ft.lm_head.weight[b] -= (4.0 - 0.25 * rank) * u
    return pair_of(tok, base, ft, "tiny-planted-groups")


def test_two_planted_token_groups_in_a_tiny_models_diff_are_two_topics(tmp_path: Path) -> None:
    corpus = str(write_jsonl(tmp_path / "c.jsonl", english_texts(30, seed=4, min_words=12)))
    request = TopKMatrixRequest(samples=24, positions=10, top_k=8, mode="logit_diff_magnitude")
    matrix = run_pass(_planted_pair(), corpus, 42, [request], progress=False).results[request]  # type: ignore[arg-type]
    assert isinstance(matrix, TopKMatrix) and matrix.rows == 24 * 10
    v, columns = matrix.matrix()
    topics = fit_topics(v, columns, NmfOptions(topics=2, seed=42))
    found = sorted(sorted(t.token_ids[:8]) for t in topics)
    assert found == [GROUP_A, GROUP_B]
    # within a topic, the token raised most comes first
    assert {t.token_ids[0] for t in topics} == {GROUP_A[0], GROUP_B[0]}
    assert abs(sum(t.prevalence for t in topics) - 1.0) < 1e-9 and all(0.1 < t.prevalence < 0.9 for t in topics)


def test_topk_depth_with_the_nmf_ordering_grades_its_topics(tiny: TinySetup, tmp_path: Path) -> None:
    """A tiny run with --orderings …,nmf stores nmf.json beside the counters' cell, grades one list per
    topic, and every view names the topics' line; a rerun reuses everything."""
    args = ["logitdiff", "topk-depth", "--model", "tiny_llama", "--organism", "tiny_cake", "--mode", "diffing", "--seeds", "42",
            "--values", "5,10", "--samples", "8", "--positions", "10", "--orderings", "top_k_occurring,fraction_positive_diff,nmf",
            "--results-dir", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.run(args, env=tiny.env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seed_dir = next((tmp_path / "results" / "tiny_llama" / "tiny_cake").glob("*/*/seed42"))
    assert sorted(p.name for p in (seed_dir / "logitdiff").iterdir()) == ["S8_T10_K10", "S8_T10_K10_nmf3", "S8_T10_K5", "S8_T10_K5_nmf3"]
    doc = json.loads((seed_dir / "logitdiff" / "S8_T10_K5_nmf3" / "nmf.json").read_text())
    assert doc["rows"] == 8 * 10 and [t["index"] for t in doc["topics"]] == [0, 1, 2]
    graded = json.loads(next((seed_dir / "logitdiff" / "S8_T10_K5_nmf3" / "relevance").glob("*.json")).read_text())
    assert [lst["list_id"] for lst in graded["lists"]] == ["topic_0", "topic_1", "topic_2"]
    assert [c["token"] for c in graded["lists"][0]["candidates"]] == [e["token"] for e in doc["topics"][0]["entries"][:20]]

    folder = tmp_path / "out" / "topk_depth" / "tiny_llama" / "tiny_cake"
    rows = json.loads((folder / "token_relevance_results.json").read_text())
    topic_rows = [r for r in rows if r["readout"] == "nmf"]
    assert {r["ordering"] for r in topic_rows} == {"topic_0", "topic_1", "topic_2"} and {r["value"] for r in topic_rows} == {5, 10}
    summary = json.loads((folder / "token_relevance_summary.json").read_text())
    nmf_line = [s for s in summary if s["method"] == "logitdiff-nmf"]
    assert [s["value"] for s in nmf_line] == [5, 10] and nmf_line[0]["label"] == "LogitDiff NMF topics"
    k5 = [r["percentage"] for r in topic_rows if r["value"] == 5 and r["percentage"] is not None]
    assert nmf_line[0]["percentage"]["points"] == len(k5) and abs(nmf_line[0]["percentage"]["mean"] - sum(k5) / len(k5)) < 1e-9

    again = subprocess.run(args, env=tiny.env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "engine pass" not in again.stderr, again.stderr[-2000:]


def test_the_agent_sees_one_token_group_per_topic() -> None:
    from logitdiff.agent.views import topics_view

    groups = [[(f"t{g}_{i}", 1.0 / (i + 1)) for i in range(30)] for g in range(3)]
    view = topics_view(groups, samples=100)
    payload = json.loads(view.overview or "")["datasets"]["ds1"]
    assert [len(g) for g in payload["token_groups"]] == [6, 6, 6]
    assert payload["token_groups"][1][0] == {"token_str": "t1_0", "weight": 1.0}
    assert payload["metadata"]["num_token_groups"] == 3 and "3 topics" in view.context
