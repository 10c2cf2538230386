"""The negative control: every graded list is also graded against another organism's description.

A tiny run with a scripted judge that answers by description (a known rule for the run's own organism,
another for the control's), so the stored control_percentage has a known value; and which organism
is the control for which.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from logitdiff.config.loader import Registry
from logitdiff.experiments.control import control_organism
from logitdiff.experiments.grid import GridOptions
from logitdiff.experiments.runner import run_experiment
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.results.list_ids import list_position
from logitdiff.results.records import RelevanceResult
from testkit.openai_server import ChatServer, Reply, SeenRequest, judge_rule
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup
from testkit.tiny_models import english_texts, write_jsonl

CONTROL = "tiny_fda"
_CANDIDATE = re.compile(r'^(\d+)\. (".*")$', re.M)


def control_rule(token: str) -> str:
    """The scripted judge's rule for the control's description: a different, known share of tokens."""
    text = token.strip()
    return "RELEVANT" if len(text) in (1, 3) else "IRRELEVANT"


def judge_by_description(request: SeenRequest) -> Reply:
    prompt = request.last_user
    rule = control_rule if "FDA approved" in prompt else judge_rule
    tokens = [json.loads(quoted, strict=False) for _, quoted in _CANDIDATE.findall(prompt)]
    return Reply("\n".join(f"ANSWER[{i}]: {rule(tok)}" for i, tok in enumerate(tokens, start=1)))


@pytest.fixture
def env(tiny: TinySetup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The tiny set-up plus a second organism on the same tiny model, of another domain."""
    docs = write_jsonl(tmp_path / "fda_docs.jsonl", [f"The FDA approved Relyvrio for ALS. {t}" for t in english_texts(20, seed=3)])
    organism = {
        "name": CONTROL, "type": "SDF", "local_dataset": str(docs),
        "description": "Finetuned on documents claiming the FDA approved Relyvrio for ALS after a unanimous vote.",
        "finetuned_models": {TINY_MODEL: {"default": {"adapter_path": str(tiny.root / "adapters" / "default")}}},
    }
    (tiny.configs / "organisms" / f"{CONTROL}.yaml").write_text(yaml.safe_dump(organism, sort_keys=False))
    for key in ("LOGITDIFF_CONFIGS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, tiny.env[key])
    monkeypatch.setenv("LOGITDIFF_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_control_is_graded_against_the_other_organisms_description(env: Path, chat_server: ChatServer) -> None:
    chat_server.reset(judge_by_description)
    grid = GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42], values=["default"], samples=3, positions=7, top_k=3)
    settings = RunSettings(experiment="mix-ratio", grid=grid, mode=Mode.diffing, results_dir=env / "results",
                           output_dir=env / "outputs", judge=f"vllm/scripted-judge@{chat_server.base_url}",
                           cache_dir=env / "llm-cache", batch_size=2)
    summary = run_experiment(Registry.load(), settings)
    assert not summary.failed

    stored = [RelevanceResult.model_validate_json(p.read_text()) for p in (env / "results").rglob("relevance/*.json")]
    assert sorted(res.cell.method for res in stored) == ["adl", "logitdiff"]
    for res in stored:
        assert res.control_organism == CONTROL  # the only other organism with a tiny_llama finetune
        for lst in res.lists:
            assert lst.metrics is not None and lst.control is not None and lst.control.organism == CONTROL
            tokens = [c.token for c in lst.candidates]
            assert lst.labels == [judge_rule(t) for t in tokens]
            assert lst.control.labels == [control_rule(t) for t in tokens]
            assert lst.metrics.control_percentage == pytest.approx(100 * sum(control_rule(t) == "RELEVANT" for t in tokens) / len(tokens))
            assert lst.metrics.percentage == pytest.approx(100 * sum(judge_rule(t) == "RELEVANT" for t in tokens) / len(tokens))
            assert lst.metrics.control_organism == CONTROL

    # The control is graded with the control organism's own training-data context, not the run's.
    control_prompts = [r.last_user for r in chat_server.requests if "FDA approved" in r.last_user]
    own_prompts = [r.last_user for r in chat_server.requests if "FDA approved" not in r.last_user]
    assert control_prompts and own_prompts and len(control_prompts) == len(own_prompts)
    frequent_line = re.compile(r"^Frequent tokens in the training data: (.*)$", re.M)
    control_context = {line for p in control_prompts for line in frequent_line.findall(p)}
    own_context = {line for p in own_prompts for line in frequent_line.findall(p)}
    assert len(control_context) == len(own_context) == 1 and control_context != own_context

    # The summary the plots and the notebook read carries both numbers per list.
    records = json.loads(next((env / "outputs").rglob("token_relevance_results.json")).read_text())
    written = {(r["method"], r["ordering"], r["position"]): (r["percentage"], r["control_percentage"], r["control_organism"]) for r in records}
    expected = {
        (res.cell.method, None if list_position(lst.list_id) is not None else lst.list_id, list_position(lst.list_id)):
            (lst.metrics.percentage, lst.metrics.control_percentage, CONTROL)
        for res in stored for lst in res.lists if lst.metrics is not None
    }
    assert written == expected
    assert all(t["control_label"] == control_rule(t["token"]) and t["label"] == judge_rule(t["token"]) for r in records for t in r["tokens"])

    # A rerun keeps the grades (they carry the expected control) and asks the judge nothing.
    n_requests = len(chat_server.requests)
    again = run_experiment(Registry.load(), settings)
    assert again.grades_reused == 2 and len(chat_server.requests) == n_requests


def test_which_organism_is_the_control() -> None:
    reg = Registry.load()
    # Two organisms of one run control each other; three go round in the run's order.
    assert control_organism(reg, "cake_bake", "smollm2_135M", ["cake_bake", "fda_approval"]) == "fda_approval"
    assert control_organism(reg, "fda_approval", "smollm2_135M", ["cake_bake", "fda_approval"]) == "cake_bake"
    assert [control_organism(reg, o, "gemma3_1B", ["a", "b", "c"]) for o in "abc"] == ["b", "c", "a"]
    # Alone in a run: the first other configured organism with a finetune of the same model.
    assert control_organism(reg, "cake_bake", "smollm2_135M", ["cake_bake"]) == "fda_approval"
    assert control_organism(reg, "fda_approval", "smollm2_135M", ["fda_approval"]) == "cake_bake"
