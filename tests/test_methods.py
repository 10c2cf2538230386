"""Methods as pure functions of pass statistics, and their result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from logitdiff.core.cell import Cell
from logitdiff.engine.stats import LogitDiffCounters, absolute_layer
from logitdiff.engine.requests import ResidualMeansRequest, TopKCountsRequest
from logitdiff.engine.streaming_pass import run_pass
from logitdiff.methods.adl import drill_lens, logit_lens
from logitdiff.methods.logitdiff import orderings
from logitdiff.registry import check_method_result, method_result, results_store
from logitdiff.registry.adl import AdlLensSpec, drill_lens_path, load_drill_lens, vectors_path
from logitdiff.registry.logitdiff import counters_path, load_orderings, orderings_path, save_logitdiff
from logitdiff.results.method_io import load_pass_record, save_pass_record
from testkit.tiny_models import english_texts, lora_pair, tiny_tokenizer, write_jsonl


@pytest.mark.parametrize(("relative", "layers", "block"), [(0.5, 26, 12), (0.5, 16, 7), (0.5, 28, 13), (0.5, 30, 14), (0.0, 30, 0), (1.0, 30, 29), (0.3, 11, 3), (0.99, 2, 0)])
def test_absolute_layer_is_floor_of_r_times_l_minus_1(relative: float, layers: int, block: int) -> None:
    assert absolute_layer(relative, layers) == block


def test_absolute_layer_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        absolute_layer(1.5, 10)


def _counters(count_pos: list[int], sum_diff: list[float], npos: list[int], positions: int = 10, top_k: int = 2) -> LogitDiffCounters:
    return LogitDiffCounters(
        samples=5,
        positions_per_text=2,
        top_k=top_k,
        positions=positions,
        count_pos=torch.tensor(count_pos, dtype=torch.int64),
        count_neg=torch.tensor([v % 3 for v in range(len(count_pos))], dtype=torch.int64),
        sum_diff=torch.tensor(sum_diff, dtype=torch.float64),
        npos=torch.tensor(npos, dtype=torch.int64),
    )


def test_orderings_values_and_tie_breaks() -> None:
    tok = tiny_tokenizer()
    v = len(tok)
    count_pos = [0] * v
    sum_diff = [0.0] * v
    npos = [0] * v
    # ids 7 and 3 tie on value and avg diff -> id ascending; id 9 ties on value but has a larger avg diff.
    for i, c, s in [(7, 5, 1.0), (3, 5, 1.0), (9, 5, 2.0), (11, 10, -4.0), (20, 1, 0.0)]:
        count_pos[i], sum_diff[i] = c, s
    npos[20], npos[3] = 10, 4
    out = orderings(_counters(count_pos, sum_diff, npos), tok, top_k=2)
    top = out["top_k_occurring"]
    assert len(top) == 100
    assert [e.token_id for e in top[:5]] == [11, 9, 3, 7, 20]
    assert [e.value for e in top[:5]] == [100.0, 50.0, 50.0, 50.0, 10.0]
    assert top[1].avg_diff == pytest.approx(0.2) and top[0].count_neg == 11 % 3
    assert top[0].token == tok.decode([11])
    # All other ids tie at value 0 and avg diff 0: id order.
    assert [e.token_id for e in top[5:8]] == [0, 1, 2]
    frac = out["fraction_positive_diff"]
    assert [(e.token_id, e.value) for e in frac[:2]] == [(20, 1.0), (3, 0.4)]


def test_orderings_keep_k_entries_when_k_is_large() -> None:
    tok = tiny_tokenizer()
    v = len(tok)
    out = orderings(_counters([1] * v, [0.0] * v, [0] * v, top_k=250), tok, top_k=250)
    assert len(out["top_k_occurring"]) == 250 and len(out["fraction_positive_diff"]) == 250


def _cell(method: str, corpus: str) -> Cell:
    return Cell(
        index=0, experiment="mix_ratio", model="tiny", organism="org", variant="default", corpus=corpus, seed=42,
        method=method, samples=4, positions=7, top_k=3, adl_layer=0.5, swept="variant", value="default",
    )  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("results")
    corpus = str(write_jsonl(root / "c.jsonl", english_texts(40, seed=2)))
    pair = lora_pair()
    ld, adl = TopKCountsRequest(4, 7, 3), ResidualMeansRequest(4, 7, 0.5)
    result = run_pass(pair, corpus, 42, [ld, adl], progress=False)
    store = results_store(root / "out")
    ld_cell, adl_cell = _cell("logitdiff", corpus), _cell("adl", corpus)
    ranked = orderings(result.results[ld], pair.tokenizer, 3)
    lens = logit_lens(result.results[adl], pair)
    save_logitdiff(store, ld_cell, result.results[ld], ranked)
    AdlLensSpec().write(store, adl_cell, result.results[adl], lens, drill_lens([result.results[adl]], pair))
    save_pass_record(store, ld_cell, result.record)
    return {"store": store, "ld_cell": ld_cell, "adl_cell": adl_cell, "ranked": ranked, "lens": lens, "record": result.record, "pair": pair, "stats": result.results[adl]}


def test_results_round_trip(saved: dict) -> None:
    store, ld_cell, adl_cell = saved["store"], saved["ld_cell"], saved["adl_cell"]
    assert load_orderings(store, ld_cell) == saved["ranked"]
    assert AdlLensSpec().load(store, adl_cell) == saved["lens"]
    assert load_pass_record(store, ld_cell) == saved["record"]
    from safetensors.torch import load_file

    vectors = load_file(vectors_path(store, adl_cell))
    assert torch.equal(vectors["delta_mean"], saved["stats"].delta_mean)
    counters = load_file(counters_path(store, ld_cell))
    assert int(counters["count_pos"].sum()) == 4 * 7 * 3
    doc = json.loads(orderings_path(store, ld_cell).read_text())
    assert doc["cell"]["seed"] == 42 and doc["positions"] == 28


def test_lens_json_has_top_100_per_position_for_all_three_vectors(saved: dict) -> None:
    lens = saved["lens"]
    assert lens.layer == 0 and lens.positions == 7
    for vectors in (lens.delta, lens.base_mean, lens.ft_mean):
        assert [p.position for p in vectors] == list(range(7))
        probs = vectors[0].positive.probs
        assert len(probs) == 100 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


@pytest.mark.parametrize("kind", ["orderings", "lens"])
def test_truncated_or_corrupted_result_raises_value_error(saved: dict, kind: str, tmp_path: Path) -> None:
    store, src_store = results_store(tmp_path), saved["store"]
    cell = saved["ld_cell"] if kind == "orderings" else saved["adl_cell"]
    src = method_result(src_store, cell)
    dst = method_result(store, cell)
    dst.parent.mkdir(parents=True)
    load = load_orderings if kind == "orderings" else AdlLensSpec().load
    text = src.read_text()
    dst.write_text(text[: len(text) // 2])  # a killed writer without atomic rename would leave this
    with pytest.raises(ValueError):
        load(store, cell)
    dst.write_text(json.dumps({"cell": {}, "unexpected": 1}))
    with pytest.raises(ValueError):
        load(store, cell)
    dst.write_text("[1, 2]")
    with pytest.raises(ValueError):
        load(store, cell)


def test_drill_lens_holds_every_position_at_the_drill_layers_and_is_checked_on_reuse(tmp_path: Path) -> None:
    """A 4-block model: relative 0.25 / 0.5 / 0.75 are blocks 0 / 1 / 2. The stored drill-down lens
    agrees with lens.json at the cell's own block, and a file for other positions fails the check."""
    from logitdiff.methods.adl import drill_layers

    corpus = str(write_jsonl(tmp_path / "c.jsonl", english_texts(40, seed=2)))
    pair = lora_pair(layers=4)
    reqs = [ResidualMeansRequest(4, 7, r) for r in drill_layers(0.5)]
    result = run_pass(pair, corpus, 42, reqs, progress=False)
    store, cell = results_store(tmp_path / "out"), _cell("adl", corpus)
    own = result.results[ResidualMeansRequest(4, 7, 0.5)]
    lens = logit_lens(own, pair)
    AdlLensSpec().write(store, cell, own, lens, drill_lens([result.results[r] for r in reqs], pair))
    save_pass_record(store, cell, result.record)
    check_method_result(store, cell)

    drill = load_drill_lens(store, cell)
    assert [(d.relative_layers, d.layer) for d in drill.layers] == [([0.25], 0), ([0.5], 1), ([0.75], 2)]
    assert all(d.positions == list(range(7)) and len(d.top[0].tokens) == 100 for d in drill.layers)
    assert [t.model_dump() for t in drill.layers[1].top] == [p.positive.model_dump() for p in lens.delta]
    assert drill.layers[0].top[3].token_ids != drill.layers[2].top[3].token_ids

    doc = json.loads(drill_lens_path(store, cell).read_text())
    doc["layers"][2]["positions"] = doc["layers"][2]["positions"][:-1]
    drill_lens_path(store, cell).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="expected \\[0, 1, 2, 3, 4, 5, 6\\]"):
        check_method_result(store, cell)
    drill_lens_path(store, cell).unlink()
    with pytest.raises(ValueError):
        check_method_result(store, cell)
