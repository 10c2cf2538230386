"""Each variant of a shared pass is graded with the frequent tokens of its own training data.

A tiny organism with two variants whose training data differ: `default` is a local adapter (trained on
the organism's `local_dataset`), `mix1-0p5` a hub finetune mirrored in a local folder (trained on the
organism's hub dataset, which is not public). Both run in one engine pass and are graded in one run;
each variant's stored trivial_percentage must be the one its own frequent tokens give.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from logitdiff.config.loader import Registry
from logitdiff.engine.models import load_tokenizer
from logitdiff.experiments.grid import GridOptions
from logitdiff.experiments.runner import run_experiment
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.judge.frequent_tokens import frequent_training_tokens
from logitdiff.judge.relevance import relevance_metrics
from logitdiff.results.records import RelevanceResult
from testkit.openai_server import ChatServer, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup

MIXED = "tiny_mixed"
VARIANTS = ["default", "mix1-0p5"]


@pytest.fixture
def env(tiny: TinySetup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tiny_cake's set-up as an organism whose variants were trained on different data."""
    organism = yaml.safe_load((tiny.configs / "organisms" / f"{TINY_ORGANISM}.yaml").read_text())
    organism.update(
        name=MIXED,
        dataset_unavailable="a private dataset",  # the hub finetune's training data
        finetuned_models={TINY_MODEL: {
            "default": {"adapter_path": str(tiny.root / "adapters" / "default")},
            "mix1-0p5": {"adapter_id": str(tiny.root / "adapters" / "mix1-0p5")},  # a local mirror of a hub finetune
        }},
    )
    (tiny.configs / "organisms" / f"{MIXED}.yaml").write_text(yaml.safe_dump(organism, sort_keys=False))
    for key in ("LOGITDIFF_CONFIGS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, tiny.env[key])
    monkeypatch.setenv("LOGITDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    return tmp_path


def test_each_variant_counts_trivial_tokens_against_its_own_training_data(env: Path, tiny: TinySetup, chat_server: ChatServer) -> None:
    chat_server.reset(scripted_judge)
    grid = GridOptions(model=TINY_MODEL, organism=MIXED, seeds=[42], values=VARIANTS, samples=3, positions=7, top_k=3)
    settings = RunSettings(experiment="mix-ratio", grid=grid, mode=Mode.diffing, results_dir=env / "results",
                           output_dir=env / "outputs", judge=f"vllm/scripted-judge@{chat_server.base_url}",
                           cache_dir=env / "run-cache", batch_size=2)
    summary = run_experiment(Registry.load(), settings)
    assert not summary.failed

    reg = Registry.load()
    tokenizer = load_tokenizer(str(tiny.root / "base"))
    own = {v: frequent_training_tokens(reg.organism(MIXED), reg.finetuned(MIXED, TINY_MODEL, v), tokenizer, env / "count-cache")
           for v in VARIANTS}
    assert own["default"].tokens and own["default"].unavailable is None  # the local documents
    assert not own["mix1-0p5"].tokens and own["mix1-0p5"].unavailable  # the private hub dataset

    stored = [RelevanceResult.model_validate_json(p.read_text()) for p in (env / "results").rglob("relevance/*.json")]
    assert sorted(res.cell.variant for res in stored) == sorted(VARIANTS * 2)  # LogitDiff and ADL of each variant
    for res in stored:
        frequent = own[res.cell.variant]
        for lst in res.lists:
            assert lst.metrics is not None
            expected = relevance_metrics(lst.candidates, lst.labels, frequent.tokens, frequent.unavailable)
            assert (lst.metrics.trivial_percentage, lst.metrics.trivial_unavailable) == (expected.trivial_percentage, expected.trivial_unavailable), (
                f"{res.cell.label()} {lst.list_id}"
            )
