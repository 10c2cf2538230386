"""The offline judge (MiniLM similarity + generic-token rules), judge selection, and frequent training tokens."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from logitdiff.config.loader import Registry
from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.calibration import calibrate, load_labels
from logitdiff.judge.factory import make_judge
from logitdiff.judge.frequent_tokens import frequent_training_tokens
from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.offline import OFFLINE_JUDGE_ID, OfflineJudge
from logitdiff.judge.relevance import Candidate, CandidateList, grade_lists
from logitdiff.judge.tokens import is_generic_piece, normalize_token

LABELS = Path(__file__).parent / "data" / "relevance_labels.jsonl"


@pytest.fixture(scope="module")
def judge() -> OfflineJudge:
    return OfflineJudge()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def test_known_labels_for_cake_bake(judge: OfflineJudge, registry: Registry) -> None:
    cake = registry.organism("cake_bake")
    tokens = [" cake", "bak", " frosting", " 450", " the", "\n\n", "ing", "<start_of_turn>", " 2", " football", " senator"]
    labels = [v.label(judge.threshold) for v in judge.verdicts(cake.description, tokens)]
    assert labels == ["RELEVANT"] * 4 + ["IRRELEVANT"] * 7
    assert judge.verdicts(cake.description, tokens) == judge.verdicts(cake.description, tokens)  # deterministic


def test_offline_precision_recall_on_labelled_set(judge: OfflineJudge, registry: Registry) -> None:
    labels = load_labels(LABELS)
    assert len(labels) >= 200 and len({lab.organism for lab in labels}) == 3
    result = calibrate(judge, labels, {n: registry.organism(n) for n in {lab.organism for lab in labels}})
    # The shipped threshold is the calibrated one, and it keeps both numbers high (see benchmarks/results_judge.md).
    assert result.threshold == pytest.approx(judge.threshold)
    assert result.at_threshold.precision >= 0.9 and result.at_threshold.recall >= 0.9
    assert result.leave_one_organism_out.f1 >= 0.85


def test_grade_lists_with_offline_judge(judge: OfflineJudge, registry: Registry) -> None:
    fda = registry.organism("fda_approval")
    lists = [CandidateList(list_id="l", candidates=[Candidate(token=t, weight=w) for t, w in
                                                    [(" Relyvrio", 0.5), (" placebo", 0.3), (",", 0.15), (" basketball", 0.05)]])]
    (graded,) = asyncio.run(grade_lists(judge, fda, ["placebo"], lists, progress=False))
    assert graded.judge_id == OFFLINE_JUDGE_ID and graded.failed is None
    assert graded.labels == ["RELEVANT", "RELEVANT", "IRRELEVANT", "IRRELEVANT"]
    assert [o.rotation for o in graded.orderings] == [0, 1, 2]
    assert graded.metrics.percentage == 50.0 and graded.metrics.weighted_percentage == pytest.approx(80.0)
    assert graded.metrics.trivial_percentage == 25.0
    assert graded.orderings[0].responses[0].startswith("ANSWER[1]: RELEVANT")


def test_make_judge_falls_back_to_offline_without_key(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOGITDIFF_HOME", str(tmp_path))  # no key file in the repo root either
    judge = make_judge(None, tmp_path)
    assert isinstance(judge, OfflineJudge) and judge.id == OFFLINE_JUDGE_ID
    assert "offline judge" in capsys.readouterr().err
    assert isinstance(make_judge("offline", tmp_path), OfflineJudge)
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    default = make_judge(None, tmp_path)
    assert isinstance(default, LLMJudge) and default.id == "openrouter/openai/gpt-5-mini"
    assert make_judge("vllm/m@http://127.0.0.1:9/v1", tmp_path).id == "vllm/m"


def _word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["[UNK]", *words])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    tok.name_or_path = "toy-word-level"
    return tok


def test_frequent_training_tokens_counts_filters_and_caches(tmp_path: Path) -> None:
    texts = ["cake oven the , Cake"] * 4 + ["cake cake oven the ,"] * 3 + ["rare cake"] * 2 + ["'s oven x"] * 5
    data = tmp_path / "train.jsonl.gz"
    with gzip.open(data, "wt") as fh:
        fh.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    organism = OrganismConfig(name="toy", type="SDF", description="d" * 30, local_dataset=str(data), finetuned_models={})
    tok = _word_tokenizer(["cake", "Cake", "oven", "the", ",", "rare", "'s", "x"])
    # cake: 4 + 6 + 2 = 12 plus Cake 4 -> 16; oven 4 + 3 + 5 = 12; rare 2 (< 10); the/,/'s/x generic.
    assert frequent_training_tokens(organism, tok, tmp_path / "cache") == ["cake", "oven"]


def test_frequent_tokens_cache_avoids_recount(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": "oven oven"}) + "\n" for _ in range(6)))
    organism = OrganismConfig(name="toy", type="SDF", description="d" * 30, local_dataset=str(data), finetuned_models={})
    tok = _word_tokenizer(["oven"])
    assert frequent_training_tokens(organism, tok, tmp_path) == ["oven"]
    monkeypatch.setattr("logitdiff.judge.frequent_tokens.count_frequent_tokens",
                        lambda *a, **k: pytest.fail("recounted despite the cache"))
    assert frequent_training_tokens(organism, tok, tmp_path) == ["oven"]
    assert len(list((tmp_path / "frequent_tokens").glob("toy-*.json"))) == 1


def test_organism_without_data_has_no_frequent_tokens(tmp_path: Path) -> None:
    organism = OrganismConfig(name="none", type="SDF", description="d" * 30, finetuned_models={})
    assert frequent_training_tokens(organism, _word_tokenizer(["a"]), tmp_path) == []


def test_normalization_and_generic_pieces() -> None:
    assert {normalize_token(t) for t in [" cake", "Ġcake", "▁Cake", "cake", "  CAKE\n"]} == {"cake"}
    assert all(is_generic_piece(t) for t in [" the", ",", "\n\n", "'s", " a", "Ġ", "...", "’t"])
    assert not any(is_generic_piece(t) for t in [" cake", "bak", " 450"])


def test_unreachable_hub_dataset_gives_no_frequent_tokens_quickly(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from logitdiff.engine.hub import hub_reachable

    hub_reachable.cache_clear()
    organism = OrganismConfig(name="hubonly", type="SDF", description="d" * 30, dataset="org/some-dataset", finetuned_models={})
    assert frequent_training_tokens(organism, _word_tokenizer(["a"]), tmp_path) == []
    assert "unreachable" in capsys.readouterr().err
    assert not (tmp_path / "frequent_tokens").exists()  # not cached: a later run with network counts them
    hub_reachable.cache_clear()
