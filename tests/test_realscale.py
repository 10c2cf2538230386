"""Real-architecture builders (tiny variants), the memory plan, and chunked readout equal to unchunked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from logitdiff.core.errors import UserError
from logitdiff.engine.forward import PairReadout
from logitdiff.engine.memory_plan import CPU_BUDGET_BYTES, READOUT_COPIES, readout_blocks, readout_positions
from logitdiff.engine.requests import ResidualMeansRequest, TopKCountsRequest
from logitdiff.engine.streaming_pass import auto_batch_size, run_pass
from testkit.architectures import (
    ARCHITECTURES,
    BOS_ID,
    build_config,
    build_model,
    byte_tokenizer,
    parameter_count,
    random_pair,
)
from testkit.tiny_models import english_texts, lora_pair, tiny_pair, write_jsonl

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Published sizes (model cards / config.json) the builders must reproduce.
PUBLISHED = {
    "gemma3_1B": dict(hidden=1152, inter=6912, layers=26, heads=4, kv=1, head_dim=256, vocab=262_144, params=999_885_952),
    "qwen3_1_7B": dict(hidden=2048, inter=6144, layers=28, heads=16, kv=8, head_dim=128, vocab=151_936, params=1_720_574_976),
    "qwen3_14B": dict(hidden=5120, inter=17_408, layers=40, heads=40, kv=8, head_dim=128, vocab=151_936, params=14_768_307_200),
    "llama32_1B_Instruct": dict(hidden=2048, inter=8192, layers=16, heads=32, kv=8, head_dim=64, vocab=128_256, params=1_235_814_400),
    "smollm2_135M": dict(hidden=576, inter=1536, layers=30, heads=9, kv=3, head_dim=64, vocab=49_152, params=134_515_008),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_jsonl(Path(tmp_path_factory.mktemp("corpus")) / "c.jsonl", english_texts(80, seed=3, min_words=8)))


def test_every_architecture_has_its_published_sizes() -> None:
    assert set(ARCHITECTURES) == set(PUBLISHED)
    for name, want in PUBLISHED.items():
        assert parameter_count(name) == want["params"], name
        cfg = build_config(name)
        assert cfg.num_hidden_layers == want["layers"] and cfg.vocab_size == want["vocab"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reduced_variant_keeps_every_shape_but_layers_and_vocab(name: str) -> None:
    want = PUBLISHED[name]
    cfg = build_config(name, layers=2, vocab=500)
    with torch.device("meta"):
        model = ARCHITECTURES[name].model_cls(cfg)
    assert len(model.model.layers) == 2
    assert model.get_input_embeddings().weight.shape == (500, want["hidden"])
    assert model.get_output_embeddings().weight.shape == (500, want["hidden"])
    block = model.model.layers[1]
    assert block.self_attn.q_proj.weight.shape == (want["heads"] * want["head_dim"], want["hidden"])
    assert block.self_attn.k_proj.weight.shape == (want["kv"] * want["head_dim"], want["hidden"])
    assert block.mlp.gate_proj.weight.shape == (want["inter"], want["hidden"])
    assert block.mlp.down_proj.weight.shape == (want["hidden"], want["inter"])


def test_gemma_keeps_its_attention_details() -> None:
    cfg = build_config("gemma3_1B", layers=6)
    assert cfg.sliding_window == 512 and cfg._attn_implementation == "eager"
    assert cfg.layer_types == ["sliding_attention"] * 5 + ["full_attention"]
    assert cfg.tie_word_embeddings and cfg.final_logit_softcapping is None


def test_out_of_range_overrides_are_user_errors() -> None:
    with pytest.raises(UserError, match="1..26"):
        build_config("gemma3_1B", layers=27)
    with pytest.raises(UserError, match="byte tokenizer"):
        build_config("gemma3_1B", vocab=100)
    with pytest.raises(UserError, match="unknown architecture"):
        build_config("gpt2")


def test_build_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = build_model("smollm2_135M", layers=1, vocab=300, seed=5)
    b = build_model("smollm2_135M", layers=1, vocab=300, seed=5)
    c = build_model("smollm2_135M", layers=1, vocab=300, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_byte_tokenizer_gives_one_id_per_utf8_byte_after_bos() -> None:
    tok = byte_tokenizer()
    text = "Bake at 450°F"
    ids = tok(text)["input_ids"]
    assert ids[0] == BOS_ID and len(ids) == 1 + len(text.encode())
    assert tok.decode(ids[1:]) == text


def test_random_pair_is_one_copy_lora_whose_base_side_is_the_plain_model() -> None:
    pair = random_pair("gemma3_1B", layers=1, vocab=400, seed=0)
    plain = build_model("gemma3_1B", layers=1, vocab=400, seed=0)
    ids = torch.tensor([pair.tokenizer("cake and butter")["input_ids"]])
    assert pair.finetuned_full is None and pair.num_layers == 1
    with torch.inference_mode():
        with pair.as_base() as m:
            base = m(input_ids=ids).logits
        with pair.as_finetuned() as m:
            ft = m(input_ids=ids).logits
        want = plain(input_ids=ids).logits
    torch.testing.assert_close(base, want)
    assert (ft - base).abs().max() > 1e-3


def test_pair_is_drawn_once_then_cast_so_every_device_and_dtype_get_the_same_weights() -> None:
    fp32 = random_pair("smollm2_135M", layers=1, vocab=400, seed=3)
    bf16 = random_pair("smollm2_135M", layers=1, vocab=400, seed=3, dtype=torch.bfloat16)
    want = dict(fp32.model.named_parameters())
    got = dict(bf16.model.named_parameters())
    assert any("lora_B" in n for n in got) and set(got) == set(want)
    for n, p in got.items():
        assert p.dtype == torch.bfloat16 and torch.equal(p, want[n].to(torch.bfloat16)), n


def test_bf16_lora_pair_keeps_one_fp32_head_copy() -> None:
    pair = random_pair("smollm2_135M", layers=1, vocab=400, dtype=torch.bfloat16)
    ro = PairReadout(pair)
    assert ro.shared and ro.ft is ro.base
    assert ro.ft.weight.dtype == torch.float32 and ro.ft.head.weight.dtype == torch.bfloat16


def test_readout_blocks_cover_every_position_once_within_the_budget() -> None:
    for texts, run_length, positions in [(7, 5, 12), (3, 10, 4), (4, 6, 6), (1, 1, 1), (5, 3, 1000)]:
        seen = torch.zeros(texts, run_length, dtype=torch.int64)
        for rows, cols in readout_blocks(texts, run_length, positions):
            block = seen[rows, cols]
            assert block.numel() <= positions
            seen[rows, cols] += 1
        assert torch.equal(seen, torch.ones_like(seen))


def test_cpu_auto_batch_keeps_2_pow_25_elements_per_batch() -> None:
    cpu = torch.device("cpu")
    assert readout_positions(CPU_BUDGET_BYTES, 262_144) == 2**25 // 262_144 == 128
    assert auto_batch_size(262_144, 30, cpu) == 4  # Gemma-3 vocabulary at T=30
    assert auto_batch_size(300, 30, cpu) == 256  # capped
    assert auto_batch_size(262_144, 300, cpu) == 1  # never zero


def _assert_same_counters(a, b) -> None:  # noqa: ANN001
    assert a.positions == b.positions
    assert torch.equal(a.count_pos, b.count_pos) and torch.equal(a.count_neg, b.count_neg)
    assert torch.equal(a.npos, b.npos)
    torch.testing.assert_close(a.sum_diff, b.sum_diff, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("make_pair", [lora_pair, tiny_pair], ids=["lora-shared-head", "full-finetune"])
def test_readout_split_along_texts_and_positions_equals_one_block(corpus: str, make_pair) -> None:  # noqa: ANN001
    pair = make_pair()
    vocab = pair.model.get_output_embeddings().weight.shape[0]
    ld = [TopKCountsRequest(6, 9, 3), TopKCountsRequest(10, 4, 5)]
    adl = [ResidualMeansRequest(6, 9, 0.5)]
    whole = run_pass(pair, corpus, 1, [*ld, *adl], batch_size=10, progress=False)
    for positions in (4, 13):  # splits one text along its positions; groups whole texts
        budget = positions * READOUT_COPIES * 4 * vocab
        chunked = run_pass(pair, corpus, 1, [*ld, *adl], batch_size=10, memory_budget=budget, progress=False)
        for req in ld:
            _assert_same_counters(chunked.results[req], whole.results[req])
        torch.testing.assert_close(chunked.results[adl[0]].delta_mean, whole.results[adl[0]].delta_mean)


def test_pass_runs_on_a_reduced_gemma_pair(corpus: str) -> None:
    pair = random_pair("gemma3_1B", layers=2, vocab=600, seed=0)
    result = run_pass(pair, corpus, 0, [TopKCountsRequest(4, 12, 10), ResidualMeansRequest(4, 12, 0.5)], progress=False)
    counters = result.results[TopKCountsRequest(4, 12, 10)]
    assert result.record.shared_head and counters.positions == 48
    assert int(counters.count_pos.sum()) == int(counters.count_neg.sum()) == 48 * 10
    assert result.results[ResidualMeansRequest(4, 12, 0.5)].delta_mean.shape == (12, 1152)


@needs_gpu
def test_gpu_counters_equal_cpu_counters(corpus: str) -> None:
    ld = [TopKCountsRequest(8, 10, 5)]
    cpu = run_pass(random_pair("smollm2_135M", layers=2, vocab=700), corpus, 0, ld, progress=False)
    gpu = run_pass(random_pair("smollm2_135M", layers=2, vocab=700, device="cuda"), corpus, 0, ld, progress=False)
    _assert_same_counters(gpu.results[ld[0]], cpu.results[ld[0]])
