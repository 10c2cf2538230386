"""ADL auto-patchscope readout: known answers on tiny models, the intersection rule, the scale choosers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from logitdiff.engine.requests import ResidualMeansRequest
from logitdiff.engine.streaming_pass import run_pass
from logitdiff.judge.scale_choice import LLMScaleChooser, content_tokens, parse_scale_answer, scale_messages
from logitdiff.llm.client import LLMCallError
from logitdiff.methods.patchscope import (
    IDENTITY_PROMPTS,
    SCALES,
    ScaleTokens,
    intersected_mean,
    patched_next_token_probs,
    patchscope,
)
from testkit.tiny_models import english_texts, residual_shift_pair, write_jsonl

SEED = 42
HIDDEN = 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_jsonl(tmp_path_factory.mktemp("corpus") / "c.jsonl", english_texts(40, seed=5, min_words=8, max_words=14)))


def test_scales_and_prompts_are_the_references() -> None:
    assert len(SCALES) == 30 and SCALES[:3] == (0.5, 0.6, 0.7) and SCALES[15] == 2.0
    assert SCALES[16:20] == (3.0, 4.0, 5.0, 10.0) and SCALES[20:] == tuple(float(v) for v in range(20, 201, 20))
    assert IDENTITY_PROMPTS[0] == "man -> man\n1135 -> 1135\nhello -> hello\n?"


@pytest.mark.parametrize(("planted", "direction_seed"), [(57, 3), (181, 8)])
def test_patchscope_recovers_the_planted_token(corpus: str, planted: int, direction_seed: int) -> None:
    """The finetune adds 4·u to block 1's output (of 3); the head maps u to one planted id. Patched into the
    identity prompts at large scales, δ = 4·u makes the model predict exactly that id on every prompt."""
    u = torch.nn.functional.normalize(torch.randn(HIDDEN, generator=torch.Generator().manual_seed(direction_seed)), dim=0)
    pair = residual_shift_pair(1, 4.0 * u, layers=3, hidden=HIDDEN)
    with torch.no_grad():
        for model in (pair.model, pair.finetuned_full):
            model.lm_head.weight[planted] = 3.0 * u
    req = ResidualMeansRequest(6, 8, 0.5)  # floor(0.5·2) = block 1
    stats = run_pass(pair, corpus, SEED, [req], progress=False).results[req]
    readout = patchscope(stats, pair, lists=5)
    assert [p.position for p in readout.delta] == [0, 1, 2, 3, 4]
    token = pair.tokenizer.decode([planted])
    for position in readout.delta:
        assert position.delta_norm == pytest.approx(4.0, abs=1e-4)
        by_scale = {s.scale: s for s in position.scales}
        assert list(by_scale) == list(SCALES)
        for scale in (20.0, 100.0, 200.0):
            assert by_scale[scale].token_ids[0] == planted and by_scale[scale].tokens[0] == token
            assert by_scale[scale].probs[0] > 0.5
    # Control: without the finetune's shift the same readout of a random direction does not name the token.
    other = torch.nn.functional.normalize(torch.randn(HIDDEN, generator=torch.Generator().manual_seed(99)), dim=0)
    probs = patched_next_token_probs(pair, 1, IDENTITY_PROMPTS[0], 200 * stats.ft_norm * other[None, :])
    assert int(probs[0].argmax()) != planted


def test_patching_the_models_own_activation_changes_nothing() -> None:
    """The hook REPLACES the block output at the last token: putting back the model's own value is a no-op."""
    pair = residual_shift_pair(1, torch.zeros(HIDDEN), layers=3, hidden=HIDDEN)
    prompt = IDENTITY_PROMPTS[1]
    ids = pair.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad(), pair.as_finetuned() as model:
        out = model(input_ids=ids, output_hidden_states=True)
    own = out.hidden_states[2][0, -1]  # output of block 1 at the last token
    expected = torch.softmax(out.logits[0, -1].float(), dim=-1)
    got = patched_next_token_probs(pair, 1, prompt, torch.stack([own, 3 * own]))
    torch.testing.assert_close(got[0], expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(got[1], expected, atol=1e-4)


def test_intersection_keeps_tokens_in_every_prompts_top_k() -> None:
    a = torch.tensor([[0.5, 0.3, 0.1, 0.1]])
    b = torch.tensor([[0.1, 0.4, 0.4, 0.1]])
    c = torch.tensor([[0.6, 0.35, 0.05, 0.0]])
    got = intersected_mean([a, b, c], top_k=2)
    # top-2 sets: {0,1}, {1,2}, {0,1}: only id 1 is in all three
    torch.testing.assert_close(got, torch.tensor([[0.0, (0.3 + 0.4 + 0.35) / 3, 0.0, 0.0]]))


def test_content_tokens_drop_artifacts_generic_pieces_and_duplicates() -> None:
    assert content_tokens([" ->", "\n", " the", " Cake", "cake", " 42", "ing", " oven", "?"]) == [" Cake", " oven"]


def _scale(scale: float, tokens: list[str]) -> ScaleTokens:
    return ScaleTokens(scale=scale, token_ids=list(range(len(tokens))), tokens=tokens, probs=[0.1] * len(tokens))


def test_offline_chooser_picks_the_coherent_scale() -> None:
    from logitdiff.judge.offline import OfflineJudge
    from logitdiff.judge.scale_choice import OfflineScaleChooser

    scales = [
        _scale(1.0, [" ->", " man", " hello", "\n", " the", " 1135"]),
        _scale(2.0, [" oven", " cake", " butter", " flour", " baking", " frosting", " the", "->"]),
        _scale(3.0, [" firehose", " unsqueeze", " Cincinnati", " ediat", " tempfile", " walnut"]),
    ]
    best, selected, lines = asyncio.run(OfflineScaleChooser(OfflineJudge()).choose(scales))
    assert best == 2.0
    assert {" oven", " cake", " butter", " baking"} <= set(selected)
    assert len(lines) == 3


@dataclass
class _Spec:
    id: str = "fake/scale-llm"


@dataclass
class _Answer:
    text: str


@dataclass
class FakeLLM:
    """Answers with the offered scale whose list holds ' cake' (or the first offered one)."""

    spec: _Spec = field(default_factory=_Spec)
    calls: list[str] = field(default_factory=list)
    bad_first: bool = False

    async def complete(self, messages: list[dict[str, str]], **_: object) -> _Answer:
        user = messages[-1]["content"]
        self.calls.append(user)
        if self.bad_first and len(self.calls) == 1:
            return _Answer("BEST_SCALER: 999\nTOP_TOKENS: x")
        lines = user.splitlines()
        offered = lines[-2].removeprefix("[SCALES] ").split(", ")
        pick = next((lines[i - 1].removeprefix("SCALE: ") for i, line in enumerate(lines) if '" cake"' in line), offered[0])
        return _Answer(f"The baking scale is coherent.\nBEST_SCALER: {pick}\nTOP_TOKENS: cake | oven")


def test_llm_chooser_runs_the_tournament() -> None:
    scales = [_scale(s, [" cake", " oven"] if s == 40.0 else [" ->", "?"]) for s in SCALES]
    llm = FakeLLM()
    best, selected, responses = asyncio.run(LLMScaleChooser(llm).choose(scales))  # type: ignore[arg-type]
    assert best == 40.0 and selected == ["cake", "oven"]
    assert len(llm.calls) == 4 and len(responses) == 4  # three groups of ≤ 10, then the final over the winners
    final_offered = llm.calls[-1].splitlines()[-2]
    assert final_offered == "[SCALES] 0.5, 1.5, 40.0"
    # artifacts are not shown; a scale left empty is still offered
    assert '" ->"' not in llm.calls[0] and "SCALE: 0.5" not in llm.calls[0] and "[SCALES] 0.5, 0.6" in llm.calls[0]


def test_llm_chooser_reasks_once_then_fails_cleanly() -> None:
    scales = [_scale(1.0, [" cake"]), _scale(2.0, [" man"])]
    llm = FakeLLM(bad_first=True)
    best, _, responses = asyncio.run(LLMScaleChooser(llm).choose(scales))  # type: ignore[arg-type]
    assert best == 1.0 and len(responses) == 2

    class Never(FakeLLM):
        async def complete(self, messages: list[dict[str, str]], **_: object) -> _Answer:
            return _Answer("no idea")

    with pytest.raises(LLMCallError):
        asyncio.run(LLMScaleChooser(Never()).choose(scales))  # type: ignore[arg-type]


def test_parse_scale_answer() -> None:
    assert parse_scale_answer("x\nbest_scaler: 1.10\nTOP_TOKENS: a | b |", [1.1, 2.0]) == (1.1, ["a", "b"])
    assert parse_scale_answer("BEST_SCALER: 3", [1.1, 2.0]) is None
    assert parse_scale_answer("BEST_SCALER: 2.0", [1.1, 2.0]) == (2.0, [])
    assert "SCALE: 2.0" in scale_messages([_scale(2.0, [" a1"])])[1]["content"]


def test_cli_adl_readout_both_doubles_adl_cells(tmp_path: Path) -> None:
    from logitdiff.config.loader import Registry
    from logitdiff.core.errors import UserError
    from logitdiff.experiments.grid import GridOptions, expand
    from logitdiff.registry import method_result, results_store

    reg = Registry.load()
    exp = reg.experiment("mix-ratio")
    lens = expand(reg, exp, GridOptions(seeds=[42]))
    both = expand(reg, exp, GridOptions(seeds=[42], adl_readout="both"))
    assert [c.method_label for c in both[:3]] == ["logitdiff", "adl", "adl-patchscope"]
    assert len(both) == len(lens) + len(lens) // 2
    store = results_store(tmp_path)
    assert store.method_dir(both[1]).name == "S1000_T30_L0.5"  # the lens keeps its old place
    assert store.method_dir(both[2]).name == "S1000_T30_L0.5_patchscope"
    assert method_result(store, both[2]).name == "patchscope.json"
    assert both[2].pass_key == both[1].pass_key  # one engine pass serves both readouts
    with pytest.raises(UserError):
        expand(reg, exp, GridOptions(seeds=[42], adl_readout="steering"))


def test_agent_overview_names_the_readout() -> None:
    from logitdiff.registry.adl import AdlLensSpec, AdlPatchscopeSpec
    from logitdiff.methods.adl import DrillLayer, DrillLens, LensTokens

    drill = DrillLens(samples=1, positions=2, layers=[DrillLayer(relative_layers=[0.5], layer=0, positions=[0, 1],
                                                                  top=[LensTokens(token_ids=[1], tokens=["a"], probs=[1.0])] * 2)])
    lens = AdlLensSpec().agent_overview({1: [(" cake", 0.5)]}, samples=1, relative_layer=0.5, layer=0, drill=drill)
    patched = AdlPatchscopeSpec().agent_overview({1: [(" cake", 0.5)]}, samples=1, relative_layer=0.5, layer=0, drill=drill)
    assert "logit lens" in lens.context and "Patchscope" not in lens.context and '"logit_lens"' in str(lens.overview)
    assert "Patchscope" in patched.context and "through the logit lens" not in patched.context
    assert '"patch_scope"' in str(patched.overview) and '" cake"' in str(patched.overview) and '"5.000e-01"' in str(patched.overview)