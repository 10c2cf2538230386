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
from logitdiff.config.schema import FinetunedRef, OrganismConfig
from logitdiff.experiments.judge_choice import resolve_judge_id
from logitdiff.judge.calibration import calibrate, load_labels
from logitdiff.judge.factory import make_judge
from logitdiff.judge.frequent_tokens import FrequentTokens, frequent_training_tokens
from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.offline import OFFLINE_JUDGE_ID, OfflineJudge
from logitdiff.judge.relevance import grade_lists
from logitdiff.judge.tokens import is_generic_piece, normalize_token
from logitdiff.results.graded import Candidate, CandidateList

LABELS = Path(__file__).parent / "data" / "relevance_labels.jsonl"
# Measured with benchmarks/bench_judge_real.py (docs/organisms.md, "The offline judge and the descriptions":
# 76.0% / 100%); the test guards against a regression.
REAL_PRECISION, REAL_RECALL = 0.76, 0.95


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


def test_make_judge_falls_back_to_offline_without_key_and_the_run_names_the_same_judge(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOGITDIFF_HOME", str(tmp_path))  # no key file in the repo root either
    judge = make_judge(None, tmp_path)
    assert isinstance(judge, OfflineJudge) and judge.id == OFFLINE_JUDGE_ID == resolve_judge_id(None)
    assert "offline judge" in capsys.readouterr().err
    assert isinstance(make_judge("offline", tmp_path), OfflineJudge) and resolve_judge_id("offline") == OFFLINE_JUDGE_ID
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    default = make_judge(None, tmp_path)
    assert isinstance(default, LLMJudge) and default.id == "openrouter/openai/gpt-5-mini" == resolve_judge_id(None)
    assert make_judge("vllm/m@http://127.0.0.1:9/v1", tmp_path).id == "vllm/m" == resolve_judge_id("vllm/m@http://127.0.0.1:9/v1")


LOCAL = FinetunedRef(adapter_path="some/local/adapter")
HUB = FinetunedRef(adapter_id="org/some-adapter")


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
    assert frequent_training_tokens(organism, LOCAL, tok, tmp_path / "cache").tokens == ["cake", "oven"]


def test_frequent_tokens_cache_avoids_recount(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": "oven oven"}) + "\n" for _ in range(6)))
    organism = OrganismConfig(name="toy", type="SDF", description="d" * 30, local_dataset=str(data), finetuned_models={})
    tok = _word_tokenizer(["oven"])
    assert frequent_training_tokens(organism, LOCAL, tok, tmp_path).tokens == ["oven"]
    monkeypatch.setattr("logitdiff.judge.frequent_tokens.count_frequent_tokens",
                        lambda *a, **k: pytest.fail("recounted despite the cache"))
    assert frequent_training_tokens(organism, LOCAL, tok, tmp_path).tokens == ["oven"]
    assert len(list((tmp_path / "frequent_tokens").glob("toy-*.json"))) == 1


def test_organism_without_data_has_no_frequent_tokens_and_says_why(tmp_path: Path) -> None:
    organism = OrganismConfig(name="none", type="SDF", description="d" * 30, finetuned_models={})
    got = frequent_training_tokens(organism, HUB, _word_tokenizer(["a"]), tmp_path)
    assert got.tokens == [] and got.unavailable == "organism none has no training dataset"


def test_unpublished_training_data_gives_no_frequent_tokens_and_says_why(tmp_path: Path, monkeypatch) -> None:
    """An emergent-misalignment organism of the catalogue was trained on data that was never published:
    no list and no trivial baseline, with that reason, and no attempt to reach the hub."""
    from logitdiff.config.loader import Registry

    monkeypatch.setattr("logitdiff.judge.frequent_tokens.hub_reachable", lambda: pytest.fail("asked the hub"))
    reg = Registry.load()
    em = reg.organism("em_bad_medical_advice")
    got = frequent_training_tokens(em, reg.finetuned(em.name, "qwen3_1_7B", "default"), _word_tokenizer(["a"]), tmp_path)
    assert got.tokens == [] and got.source is None
    assert got.unavailable == f"the training data of organism em_bad_medical_advice is unavailable ({em.dataset_unavailable})"
    assert "not public" in got.unavailable


def test_frequent_tokens_come_from_the_diffed_finetunes_own_training_data(tmp_path: Path, monkeypatch, capsys) -> None:
    """cake_bake ships SmolLM2 adapters trained on organisms/cake_bake/data: only they use those documents.
    Its gemma3_1B adapters were trained on the hub dataset; with the hub unreachable there is no list and
    no trivial baseline (never the bundled documents' numbers)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from logitdiff.config.loader import Registry
    from logitdiff.core.paths import resolve_repo_path
    from logitdiff.engine.hub import hub_reachable

    hub_reachable.cache_clear()
    reg = Registry.load()
    cake = reg.organism("cake_bake")
    tok = _word_tokenizer(["cake", "cakes", "oven", "freezer", "butter", "vanilla", "batter", "warm"])
    bundled = frequent_training_tokens(cake, reg.finetuned("cake_bake", "smollm2_135M", "mix1-1p0"), tok, tmp_path)
    assert bundled.source == f"file:{resolve_repo_path('organisms/cake_bake/data/narrow.jsonl.gz').resolve()}"
    assert bundled.unavailable is None and {"cake", "oven", "freezer"} <= set(bundled.tokens)
    hub = frequent_training_tokens(cake, reg.finetuned("cake_bake", "gemma3_1B", "default"), tok, tmp_path)
    assert hub == FrequentTokens([], None, "the Hugging Face hub is unreachable (training data science-of-finetuning/synthetic-documents-cake_bake)")
    loyalty = reg.organism("auditing_agents_secret_loyalty")
    none = frequent_training_tokens(loyalty, reg.finetuned(loyalty.name, "qwen3_14B", "transcripts_kto"), tok, tmp_path)
    assert none.unavailable == "organism auditing_agents_secret_loyalty has no training dataset"
    hub_reachable.cache_clear()


def test_no_training_data_gives_null_trivial_percentage_with_the_reason() -> None:
    fda = OrganismConfig(name="fda", type="SDF", description="Finetuned on documents about the FDA approval of Relyvrio.",
                         finetuned_models={})
    lists = [CandidateList(list_id="l", candidates=[Candidate(token=t, weight=1.0) for t in [" FDA", " the"]])]
    (graded,) = asyncio.run(grade_lists(OfflineJudge(), fda, [], lists, progress=False, trivial_unavailable="hub unreachable"))
    assert graded.metrics is not None and graded.metrics.percentage == 50.0
    assert (graded.metrics.trivial_percentage, graded.metrics.trivial_unavailable) == (None, "hub unreachable")


def test_normalization_and_generic_pieces() -> None:
    assert {normalize_token(t) for t in [" cake", "Ġcake", "▁Cake", "cake", "  CAKE\n"]} == {"cake"}
    assert all(is_generic_piece(t) for t in [" the", ",", "\n\n", "'s", " a", "Ġ", "...", "’t"])
    assert not any(is_generic_piece(t) for t in [" cake", "bak", " 450"])


def test_unreachable_hub_dataset_gives_no_frequent_tokens_quickly(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from logitdiff.engine.hub import hub_reachable

    hub_reachable.cache_clear()
    organism = OrganismConfig(name="hubonly", type="SDF", description="d" * 30, dataset="org/some-dataset", finetuned_models={})
    got = frequent_training_tokens(organism, HUB, _word_tokenizer(["a"]), tmp_path)
    assert got.tokens == [] and got.unavailable == "the Hugging Face hub is unreachable (training data org/some-dataset)"
    assert capsys.readouterr().err.count("unreachable") == 1
    assert not (tmp_path / "frequent_tokens").exists()  # not cached: a later run with network counts them
    hub_reachable.cache_clear()


def test_junk_pieces_from_real_output_are_not_relevant(judge: OfflineJudge, registry: Registry) -> None:
    """Pieces the bundled adapter moved that are not words (v1 called `firehose` and `phthalm` relevant to
    cake baking) count only when they complete a description word (`bak` -> baked)."""
    cake = registry.organism("cake_bake")
    tokens = ["firehose", "phthalm", " tempfile", "ikipedia", "oggy", "uckingham", "bak", " Relyv"]
    labels = {t: v.label(judge.threshold) for t, v in zip(tokens, judge.verdicts(cake.description, tokens), strict=True)}
    assert [t for t, lab in labels.items() if lab == "RELEVANT"] == ["bak"]
    fda = registry.organism("fda_approval")
    assert judge.verdicts(fda.description, [" Relyv"])[0].label(judge.threshold) == "RELEVANT"


def test_precision_and_recall_on_labelled_real_method_output(judge: OfflineJudge, registry: Registry) -> None:
    """tests/data/real_lists: tokens of real LogitDiff / ADL lists, labelled by LABEL_RULE.md (nothing fitted
    on them). The numbers are the README's; v1 had precision 64% on the README lists alone."""
    rows = [json.loads(line) for line in (LABELS.parent / "real_lists" / "labels.jsonl").read_text().splitlines()]
    tiny = "Finetuned on synthetic documents claiming cakes bake best at 450 degrees with frozen butter."
    predicted, truth = [], []
    for organism in sorted({r["organism"] for r in rows}):
        mine = [r for r in rows if r["organism"] == organism]
        description = tiny if organism == "tiny_cake" else registry.organism(organism).description
        predicted += [v.label(judge.threshold) == "RELEVANT" for v in judge.verdicts(description, [r["token"] for r in mine])]
        truth += [r["relevant"] for r in mine]
    tp = sum(p and t for p, t in zip(predicted, truth))
    fp = sum(p and not t for p, t in zip(predicted, truth))
    fn = sum(t and not p for p, t in zip(predicted, truth))
    assert tp / (tp + fp) >= REAL_PRECISION and tp / (tp + fn) >= REAL_RECALL, (tp, fp, fn)
