"""The one streaming pass: known answers, and equality with a naive per-cell computation."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import load_corpus
from logitdiff.engine.models import ModelPair
from logitdiff.engine.accumulators import TopKCodes
from logitdiff.engine.record import RequestRecord
from logitdiff.engine.requests import Accumulator, ResidualMeansRequest, TopKCountsRequest
from logitdiff.engine.stats import ADL_VECTORS, COUNTERS, absolute_layer
from logitdiff.engine.streaming_pass import run_pass, run_variants_pass
from logitdiff.methods.adl import logit_lens
from logitdiff.methods.logitdiff import orderings
from testkit.tiny_models import biased_head_pair, english_texts, lora_pair, lora_variants, no_bos_tokenizer, residual_shift_pair, tiny_pair, write_jsonl

SEED = 42


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    texts = english_texts(80, seed=11, min_words=1, max_words=14)
    texts[3] = texts[9] = ""  # empty texts are skipped
    return str(write_jsonl(tmp_path_factory.mktemp("corpus") / "c.jsonl", texts))


def naive_texts(pair: ModelPair, corpus: str, samples: int, positions: int) -> list[list[int]]:
    """SPEC §2 written out plainly: full tokenization, first S texts with ≥ T tokens."""
    out = []
    for _, text in load_corpus(corpus, SEED):
        if not text.strip():
            continue
        ids = pair.tokenizer(text, add_special_tokens=True)["input_ids"]
        if len(ids) >= positions:
            out.append(ids[:positions])
        if len(out) == samples:
            return out
    raise AssertionError("test corpus too small")


def naive_forward(pair: ModelPair, ids: list[int], layer: int | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """d [T, V] from the models' own full forward (one text, no batching) and the block-`layer` residuals."""
    x = torch.tensor([ids])
    with torch.no_grad():
        with pair.as_base() as m:
            out_b = m(input_ids=x, output_hidden_states=True)
        with pair.as_finetuned() as m:
            out_f = m(input_ids=x, output_hidden_states=True)
    d = out_f.logits[0].double() - out_b.logits[0].double()
    if layer is None:
        return d, None, None
    return d, out_b.hidden_states[layer + 1][0], out_f.hidden_states[layer + 1][0]


def naive_logitdiff(
    pair: ModelPair, corpus: str, s: int, t: int, k: int, first: int = 0, cache: dict | None = None
) -> dict[str, torch.Tensor]:
    """Counts over positions first … t−1 of each text's own full forward (BOS included in the input).
    `cache` maps a text's ids to its d: a text's forward does not depend on the cell, only the counting does."""
    cache = {} if cache is None else cache
    v = pair.model.get_output_embeddings().weight.shape[0]
    count_pos = torch.zeros(v, dtype=torch.int64)
    count_neg = torch.zeros(v, dtype=torch.int64)
    sum_diff = torch.zeros(v, dtype=torch.float64)
    npos = torch.zeros(v, dtype=torch.int64)
    for ids in naive_texts(pair, corpus, s, t):
        key = tuple(ids)
        if key not in cache:
            cache[key] = naive_forward(pair, ids, None)[0]
        d = cache[key][first:]
        for p in range(t - first):
            count_pos[torch.topk(d[p], k).indices] += 1
            count_neg[torch.topk(-d[p], k).indices] += 1
        sum_diff += d.sum(0)
        npos += (d > 0).sum(0)
    return {"count_pos": count_pos, "count_neg": count_neg, "sum_diff": sum_diff, "npos": npos}


def assert_counters_equal(got, want: dict[str, torch.Tensor], positions: int) -> None:  # noqa: ANN001
    assert got.positions == positions
    assert torch.equal(got.count_pos, want["count_pos"])
    assert torch.equal(got.count_neg, want["count_neg"])
    assert torch.equal(got.npos, want["npos"])
    torch.testing.assert_close(got.sum_diff, want["sum_diff"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("make_pair", [tiny_pair, lora_pair], ids=["full-weights", "lora"])
def test_one_pass_equals_naive_runs_for_every_cell(corpus: str, make_pair) -> None:  # noqa: ANN001
    pair = make_pair()
    grid = [TopKCountsRequest(s, t, k) for s, t, k in itertools.product((3, 7, 12), (1, 4, 9), (1, 3, 10))]
    result = run_pass(pair, corpus, SEED, grid, batch_size=4, progress=False)
    assert set(result.results) == set(grid)
    cache: dict = {}
    for req in grid:
        want = naive_logitdiff(pair, corpus, req.samples, req.positions, req.top_k, cache=cache)
        assert_counters_equal(result.results[req], want, req.samples * req.positions)


def test_lora_pass_uses_one_shared_head(corpus: str) -> None:
    assert run_pass(lora_pair(), corpus, SEED, [TopKCountsRequest(2, 3, 2)], progress=False).record.shared_head
    assert not run_pass(tiny_pair(), corpus, SEED, [TopKCountsRequest(2, 3, 2)], progress=False).record.shared_head


def test_results_hold_the_declared_tensors(corpus: str) -> None:
    """What a pass returns is what the store checks a stored file against (one declaration of both)."""
    result = run_pass(tiny_pair(), corpus, SEED, [TopKCountsRequest(2, 6, 2), ResidualMeansRequest(2, 6, 0.5)], progress=False)
    for got, declared in ((result.results[TopKCountsRequest(2, 6, 2)].tensors(), COUNTERS), (result.results[ResidualMeansRequest(2, 6, 0.5)].tensors(), ADL_VECTORS)):
        assert {name: (t.dtype, t.dim()) for name, t in got.items()} == declared


def test_adl_equals_naive_means_and_norms(corpus: str) -> None:
    # HF's hidden_states[L] is taken after the final norm, so the naive side only checks blocks < L−1.
    pair = lora_pair(layers=5)
    reqs = [ResidualMeansRequest(5, 8, 0.5), ResidualMeansRequest(9, 7, 0.75), ResidualMeansRequest(5, 8, 0.0)]
    result = run_pass(pair, corpus, SEED, [TopKCountsRequest(9, 7, 3), *reqs], batch_size=3, progress=False)
    for req in reqs:
        layer = absolute_layer(req.layer, 5)
        stats = result.results[req]
        assert stats.layer == layer
        hb, hf = zip(*(naive_forward(pair, ids, layer)[1:] for ids in naive_texts(pair, corpus, req.samples, req.positions)), strict=True)
        base, ft = torch.stack(hb), torch.stack(hf)
        torch.testing.assert_close(stats.delta_mean, (ft - base).mean(0), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stats.base_mean, base.mean(0), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stats.ft_mean, ft.mean(0), rtol=1e-5, atol=1e-5)
        assert stats.base_norm == pytest.approx(float(base[:, 5:].norm(dim=-1).mean()), rel=1e-5)
        assert stats.ft_norm == pytest.approx(float(ft[:, 5:].norm(dim=-1).mean()), rel=1e-5)


def test_biased_head_puts_exactly_the_chosen_ids_on_top(corpus: str) -> None:
    bias = {17: 3.0, 123: 2.0, 250: 1.5}
    pair = biased_head_pair(bias)
    req = TopKCountsRequest(10, 6, len(bias))
    counters = run_pass(pair, corpus, SEED, [req], progress=False).results[req]
    ranked = orderings(counters, pair.tokenizer, req.top_k)
    top = ranked["top_k_occurring"]
    assert [e.token_id for e in top[:3]] == [17, 123, 250]  # value ties at 100 broken by avg diff
    assert [e.value for e in top[:3]] == [100.0, 100.0, 100.0]
    assert [e.avg_diff for e in top[:3]] == pytest.approx([3.0, 2.0, 1.5], abs=1e-5)
    assert top[3].value == 0.0
    frac = ranked["fraction_positive_diff"]
    assert [e.token_id for e in frac[:3]] == [17, 123, 250] and frac[0].value == 1.0
    # fraction_positive_diff entries count positions with d > 0 and the rest (as the reference does),
    # not the top-K / bottom-K counts of the other ordering: every unbiased id has d = 0 everywhere.
    assert counters.positions == 60
    assert [(e.count_pos, e.count_neg) for e in frac[:3]] == [(60, 0)] * 3
    assert all((e.count_pos, e.count_neg) == (0, 60) for e in frac[3:])
    assert all(e.count_pos == round(e.value * 60) for e in frac)


def test_residual_shift_comes_back_as_delta_and_its_lens_ranks_the_raised_ids(corpus: str) -> None:
    hidden, block = 32, 1
    u = torch.nn.functional.normalize(torch.randn(hidden, generator=torch.Generator().manual_seed(3)), dim=0)
    pair = residual_shift_pair(block, 4.0 * u, layers=3, hidden=hidden)
    raised = [40, 90, 200]
    with torch.no_grad():
        for model in (pair.model, pair.finetuned_full):
            for scale, i in zip((3.0, 2.5, 2.0), raised, strict=True):
                model.lm_head.weight[i] = scale * u
    req = ResidualMeansRequest(6, 8, 0.5)  # 3 layers: floor(0.5·2) = block 1
    stats = run_pass(pair, corpus, SEED, [req], progress=False).results[req]
    torch.testing.assert_close(stats.delta_mean, (4.0 * u).expand(8, hidden), rtol=0, atol=1e-5)
    lens = logit_lens(stats, pair)
    for position in lens.delta:
        assert position.positive.token_ids[:3] == raised
        assert len(position.positive.token_ids) == 100 and len(position.negative.token_ids) == 100
    assert len(lens.base_mean) == len(lens.ft_mean) == 8


@pytest.mark.parametrize("drop_bos", [False, True])
def test_bos_switch_matches_naive(corpus: str, drop_bos: bool) -> None:
    """--drop-bos: the same texts run with their BOS; only positions 1 … T−1 are counted."""
    pair = tiny_pair()
    reqs = [TopKCountsRequest(5, 4, 3), TopKCountsRequest(6, 2, 1)]
    result = run_pass(pair, corpus, SEED, reqs, drop_bos=drop_bos, progress=False)
    first = int(drop_bos)
    assert result.record.drop_bos is drop_bos and result.record.first_counted_position == first
    for req in reqs:
        want = naive_logitdiff(pair, corpus, req.samples, req.positions, req.top_k, first=first)
        assert_counters_equal(result.results[req], want, req.samples * (req.positions - first))


def test_drop_bos_removes_exactly_the_bos_position(corpus: str) -> None:
    """The BOS stays in the input, so every other position's logits and activations are unchanged: the counts
    and sums without position 0 are the full ones minus position 0's share, which is the same for every
    text (position 0 always holds BOS and sees nothing else)."""
    pair = lora_pair(layers=3)
    s, t, k = 9, 7, 2
    ld, adl = TopKCountsRequest(s, t, k), ResidualMeansRequest(s, t, 0.5)
    kept = run_pass(pair, corpus, SEED, [ld, adl], progress=False)
    dropped = run_pass(pair, corpus, SEED, [ld, adl], drop_bos=True, progress=False)
    assert kept.record.rows_by_positions == dropped.record.rows_by_positions  # the same texts
    d0 = naive_forward(pair, [pair.tokenizer.bos_token_id], None)[0][0]  # d at the BOS position
    full, part = kept.results[ld], dropped.results[ld]
    assert (full.positions, part.positions) == (s * t, s * (t - 1))
    bos_top = torch.zeros_like(full.count_pos)
    bos_top[torch.topk(d0, k).indices] = s
    assert torch.equal(full.count_pos - part.count_pos, bos_top)
    bos_bottom = torch.zeros_like(full.count_neg)
    bos_bottom[torch.topk(-d0, k).indices] = s
    assert torch.equal(full.count_neg - part.count_neg, bos_bottom)
    assert torch.equal(full.npos - part.npos, s * (d0 > 0).long())
    torch.testing.assert_close(full.sum_diff - part.sum_diff, s * d0, rtol=1e-5, atol=1e-4)
    # ADL: the means of positions 1 … T−1 are the same vectors; position 0 has none; norms (positions ≥ 5) agree.
    a_full, a_part = kept.results[adl], dropped.results[adl]
    assert a_part.first_position == 1 and a_part.positions_per_text == t and a_part.delta_mean.shape[0] == t - 1
    torch.testing.assert_close(a_part.delta_mean, a_full.delta_mean[1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(a_part.ft_mean, a_full.ft_mean[1:], rtol=0, atol=1e-6)
    assert a_part.base_norm == pytest.approx(a_full.base_norm, rel=1e-6)
    lens = logit_lens(a_part, pair)
    assert [p.position for p in lens.delta] == list(range(1, t))


def test_drop_bos_without_a_bos_token_leaves_nothing_out(corpus: str, capfd: pytest.CaptureFixture[str]) -> None:
    """SmolLM2 / Qwen: position 0 is the first text token, not a BOS; --drop-bos counts it and says so."""
    pair = tiny_pair()
    pair = dataclasses.replace(pair, tokenizer=no_bos_tokenizer())
    req = TopKCountsRequest(6, 4, 2)
    kept = run_pass(pair, corpus, SEED, [req], progress=False)
    dropped = run_pass(pair, corpus, SEED, [req], drop_bos=True, progress=False)
    assert "adds no BOS token, so no position is left out" in capfd.readouterr().err
    assert dropped.record.first_counted_position == 0 and dropped.results[req].positions == 6 * 4
    assert torch.equal(kept.results[req].count_pos, dropped.results[req].count_pos)
    assert torch.equal(kept.results[req].npos, dropped.results[req].npos)


def test_position_zero_is_bos(corpus: str) -> None:
    """With BOS kept, every text starts with the same token, so d at position 0 is the same for all texts."""
    pair = tiny_pair()
    req = TopKCountsRequest(8, 1, 1)
    kept = run_pass(pair, corpus, SEED, [req], progress=False).results[req]
    assert int((kept.count_pos > 0).sum()) == 1 and int(kept.count_pos.max()) == 8


def test_smaller_s_uses_a_prefix_and_gives_the_same_counters(corpus: str) -> None:
    pair = tiny_pair()
    small, large = TopKCountsRequest(3, 9, 3), TopKCountsRequest(12, 9, 3)
    both = run_pass(pair, corpus, SEED, [small, large], progress=False)
    alone = run_pass(pair, corpus, SEED, [small], progress=False)
    rows = both.record.rows_by_positions[9]
    assert len(rows) == 12 and alone.record.rows_by_positions[9] == rows[:3]
    assert torch.equal(both.results[small].count_pos, alone.results[small].count_pos)
    torch.testing.assert_close(both.results[small].sum_diff, alone.results[small].sum_diff, rtol=1e-6, atol=1e-5)


def test_record_lists_requests_rows_and_token_counts(corpus: str) -> None:
    pair = tiny_pair()
    result = run_pass(pair, corpus, SEED, [TopKCountsRequest(4, 3, 2), ResidualMeansRequest(2, 6, 0.5)], progress=False)
    rec = result.record
    assert rec.seed == SEED and rec.corpus == corpus and rec.finetuned_id == "tiny-noise-finetune"
    assert [r.method for r in rec.requests] == ["logitdiff", "adl"] and rec.requests[1].layer == 0
    rows3, rows6 = rec.rows_by_positions[3], rec.rows_by_positions[6]
    assert len(rows3) == 4 and len(rows6) == 2
    run = set(rows3) | set(rows6)
    assert rec.texts_run == len(run)
    assert rec.tokens_run == sum(6 if row in rows6 else 3 for row in run)
    assert rec.texts_read == rec.texts_empty + rec.texts_too_short + rec.texts_run
    assert {"total", "forward", "statistics"} <= set(rec.timings_s)
    assert rec.versions["torch"] == importlib.metadata.version("torch")


def test_too_small_corpus_is_a_user_error(tmp_path: Path) -> None:
    path = str(write_jsonl(tmp_path / "small.jsonl", ["one two three four five six seven eight nine ten"] * 4))
    with pytest.raises(UserError, match=r"only 4 usable texts with at least T=5 tokens, but S=6"):
        run_pass(tiny_pair(), path, SEED, [TopKCountsRequest(6, 5, 2)], progress=False)


def test_invalid_requests_are_user_errors(corpus: str) -> None:
    pair = tiny_pair()
    with pytest.raises(UserError, match="exceeds the vocabulary"):
        run_pass(pair, corpus, SEED, [TopKCountsRequest(2, 2, 10_000)], progress=False)
    with pytest.raises(UserError, match="T > 5"):
        run_pass(pair, corpus, SEED, [ResidualMeansRequest(2, 5, 0.5)], progress=False)


def test_last_block_is_hooked_before_the_final_norm(corpus: str) -> None:
    """r = 1 maps to block L−1, whose output is the residual BEFORE the final norm (HF's last hidden state is after)."""
    pair = tiny_pair(layers=3)
    req = ResidualMeansRequest(1, 7, 1.0)
    stats = run_pass(pair, corpus, SEED, [req], progress=False).results[req]
    ids = naive_texts(pair, corpus, 1, 7)[0]
    with torch.no_grad():
        normed = pair.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[3][0]
        torch.testing.assert_close(pair.model.model.norm(stats.base_mean), normed, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(stats.base_mean, normed, atol=1e-2)


@pytest.mark.parametrize("head_adapted", [False, True], ids=["shared-head", "adapted-head"])
def test_multi_variant_pass_equals_one_pass_per_variant(corpus: str, head_adapted: bool) -> None:
    """One base forward for three adapters == three pair passes, and == the naive per-cell runs.

    v0 and v1 ask for the same cells (mix-ratio: identical batches, so bit-identical results); v2 asks
    for fewer and different slots, so it runs on a subset of the shared batches.
    """
    modules = ("q_proj", "v_proj", "down_proj", "lm_head") if head_adapted else ("q_proj", "v_proj", "down_proj")
    views = lora_variants(3, layers=4, target_modules=modules)
    grid = [TopKCountsRequest(s, t, k) for s, t, k in itertools.product((3, 12), (4, 9), (1, 10))]
    adl = [ResidualMeansRequest(12, 9, 0.5)]
    requests = {
        "v0": [*grid, *adl],
        "v1": [*grid, *adl],
        "v2": [TopKCountsRequest(5, 6, 3), TopKCountsRequest(12, 9, 10), ResidualMeansRequest(7, 8, 1.0)],
    }
    multi = run_variants_pass(views, requests, corpus, SEED, batch_size=4, progress=False)
    for key, reqs in requests.items():
        alone = run_pass(views[key], corpus, SEED, reqs, batch_size=4, progress=False)
        got = multi[key]
        assert set(got.results) == set(reqs)
        assert got.record.rows_by_positions == alone.record.rows_by_positions
        assert got.record.texts_run == alone.record.texts_run and got.record.tokens_run == alone.record.tokens_run
        assert got.record.base_shared_with == ["tiny-lora-v0", "tiny-lora-v1", "tiny-lora-v2"]
        cache: dict = {}
        for req in (r for r in reqs if isinstance(r, TopKCountsRequest)):
            a, b = got.results[req], alone.results[req]
            assert torch.equal(a.count_pos, b.count_pos) and torch.equal(a.count_neg, b.count_neg) and torch.equal(a.npos, b.npos)
            torch.testing.assert_close(a.sum_diff, b.sum_diff, rtol=1e-6, atol=1e-5)
            assert_counters_equal(a, naive_logitdiff(views[key], corpus, req.samples, req.positions, req.top_k, cache=cache), req.samples * req.positions)
            assert orderings(a, views[key].tokenizer, req.top_k) == orderings(b, views[key].tokenizer, req.top_k)
        for areq in (r for r in reqs if isinstance(r, ResidualMeansRequest)):
            torch.testing.assert_close(got.results[areq].delta_mean, alone.results[areq].delta_mean, rtol=1e-6, atol=1e-6)
            assert logit_lens(got.results[areq], views[key]) == logit_lens(alone.results[areq], views[key])
    # The adapters really differ: otherwise sharing could hide a switch that never happened.
    req = grid[-1]
    assert not torch.equal(multi["v0"].results[req].count_pos, multi["v1"].results[req].count_pos)


def test_variants_of_different_bases_cannot_share_a_pass(corpus: str) -> None:
    with pytest.raises(ValueError, match="views of one base model"):
        run_variants_pass(
            {"a": lora_pair(), "b": lora_pair()},
            {"a": [TopKCountsRequest(2, 3, 2)], "b": [TopKCountsRequest(2, 3, 2)]},
            corpus, SEED, progress=False,
        )  # fmt: skip


class _TopIds:
    """Counts, per id, the positions it is among the `k` largest d at: decoded from the codes the pass hands over."""

    def __init__(self, k: int) -> None:
        self.layers: frozenset[int] = frozenset()
        self.k = k
        self.counts: torch.Tensor | None = None

    def add_residuals(self, base: dict[int, torch.Tensor], ft: dict[int, torch.Tensor]) -> None:
        raise AssertionError("an accumulator with no layers is given no residuals")

    def add_logits(self, d: torch.Tensor, pos_codes: torch.Tensor, neg_codes: torch.Tensor, codes: TopKCodes) -> None:
        assert pos_codes.shape[0] == d.shape[0] == neg_codes.shape[0]
        ids = pos_codes[:, : self.k] // len(codes.ks)  # ranked at least k deep, so no rank here is `unranked`
        counts = torch.bincount(ids.reshape(-1), minlength=codes.vocab)
        self.counts = counts if self.counts is None else self.counts + counts


@dataclass(frozen=True)
class _TopIdsRequest:
    """A statistic the pass does not know by name."""

    samples: int
    positions: int
    depth: int

    def validate(self, vocab: int, model_name: str) -> None:
        pass  # every depth the test asks for fits the tiny vocabulary

    def accumulator_key(self, num_layers: int) -> Hashable:
        return ("top ids", self.depth)

    def new_accumulator(self, num_layers: int, hidden: int, device: torch.device, first_position: int) -> _TopIds:
        return _TopIds(self.depth)

    def read(self, acc: Accumulator, num_layers: int) -> torch.Tensor:
        assert isinstance(acc, _TopIds) and acc.counts is not None
        return acc.counts

    def record(self, num_layers: int) -> RequestRecord:
        return RequestRecord(method="top ids", samples=self.samples, positions=self.positions, top_k=self.depth)


def test_a_new_statistic_is_one_request_and_one_accumulator(corpus: str) -> None:
    """A request class the pass does not know, in a slot whose LogitDiff counters need a shallower K and
    beside a slot that ranks deeper: it is given each counted position's d and codes ranked as deep as
    it asks, and gets exactly the naive top-K counts."""
    pair = tiny_pair()
    mine = _TopIdsRequest(5, 6, 7)
    reqs = [TopKCountsRequest(5, 6, 3), mine, TopKCountsRequest(8, 4, 10)]
    result = run_pass(pair, corpus, SEED, reqs, batch_size=3, progress=False)
    assert torch.equal(result.results[mine], naive_logitdiff(pair, corpus, 5, 6, 7)["count_pos"])
    assert_counters_equal(result.results[reqs[0]], naive_logitdiff(pair, corpus, 5, 6, 3), 5 * 6)
    assert [r.method for r in result.record.requests] == ["logitdiff", "top ids", "logitdiff"]
