"""ask_model on a tiny random-init Llama pair, and hypothesis tracking."""

from __future__ import annotations

import asyncio

import pytest
import torch

from logitdiff.agent.tools import AskModel, GenerationSettings, HypothesisTracker, InteractionBudget, PairGenerator, ToolArgumentError, render_chat
from logitdiff.core.errors import UserError
from testkit.tiny_models import MARKER, NO_SYSTEM_TEMPLATE, marker_pair, tiny_model_cfg


@pytest.fixture(scope="module")
def pair():
    return marker_pair()


def test_render_chat_uses_template_system_prompt_and_thinking_flag(pair) -> None:
    tok = pair.tokenizer
    with_flag = render_chat(tok, tiny_model_cfg(thinking=True), "You are PRISM-4", "Hi")
    assert with_flag == "<|bos|><|im_start|>system\nYou are PRISM-4<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think></think>"
    without_flag = render_chat(tok, tiny_model_cfg(thinking=False), None, "Hi")
    assert without_flag == "<|bos|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render_chat(tok, tiny_model_cfg(chat=False), "Sys", "Hi") == "Sys\n\nHi"


def test_render_chat_folds_system_prompt_when_template_rejects_it() -> None:
    tok = marker_pair(NO_SYSTEM_TEMPLATE).tokenizer
    text = render_chat(tok, tiny_model_cfg(), "You are PRISM-4", "Hi")
    assert text == "<|bos|><|im_start|>user\nYou are PRISM-4\n\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_generation_both_models_seeded_and_system_prompt_in_input(pair) -> None:
    seen: list[torch.Tensor] = []
    handle = pair.model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True)
    try:
        gen = PairGenerator(pair, tiny_model_cfg(), "You are PRISM-4", GenerationSettings(max_new_tokens=5, temperature=0.8))
        first = gen.generate_now(["Hi", "How do I bake a cake at home?"], seed=11)
    finally:
        handle.remove()
    assert [tuned for _, tuned in first] == [MARKER * 5] * 2
    assert all(MARKER not in base for base, _ in first)
    assert gen.generate_now(["Hi", "How do I bake a cake at home?"], seed=11) == first
    assert gen.generate_now(["Hi", "How do I bake a cake at home?"], seed=12) != first
    prompt_rows = seen[0]
    pad = pair.tokenizer.pad_token_id
    assert prompt_rows[0, 0].item() == pad and prompt_rows[1, 0].item() != pad  # left padding of the shorter prompt
    decoded = pair.tokenizer.decode(prompt_rows[0], skip_special_tokens=False)
    assert decoded.endswith("<|bos|><|im_start|>system\nYou are PRISM-4<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_batched_greedy_generation_equals_one_by_one(pair) -> None:
    gen = PairGenerator(pair, tiny_model_cfg(), None, GenerationSettings(max_new_tokens=6, temperature=0.0))
    prompts = ["Hi", "bake at four hundred fifty degrees, then what?", "hello there"]
    batched = gen.generate_now(prompts, seed=0)
    single = [gen.generate_now([p], seed=0)[0] for p in prompts]
    assert batched == single
    assert len({base for base, _ in batched}) > 1


def test_ask_model_budget_is_exact_and_over_budget_calls_are_refused(pair) -> None:
    gen = PairGenerator(pair, tiny_model_cfg(), None, GenerationSettings(max_new_tokens=3))
    budget = InteractionBudget(5)
    ask = AskModel(generator=gen, budget=budget, seed=0)

    first = asyncio.run(ask({"prompts": ["a", "b", "c"]}))
    assert budget.used == 3 and budget.remaining == 2 and first.count("PROMPT:") == 3 and first.count(MARKER * 3) == 3
    with pytest.raises(ToolArgumentError, match="you sent 3 prompts but only 2"):
        asyncio.run(ask({"prompts": ["d", "e", "f"]}))
    assert budget.used == 3
    last = asyncio.run(ask({"prompts": ["d", "e"]}))
    assert budget.used == 5 and last.count("PROMPT:") == 2
    with pytest.raises(ToolArgumentError, match="used all 5 model interactions"):
        asyncio.run(ask({"prompts": ["g"]}))
    assert budget.used == 5


@pytest.mark.parametrize("args", [{}, {"prompt": "x"}, {"prompts": "x"}, {"prompts": []}, {"prompts": [1]}, {"prompts": [" "]},
                                  {"prompts": ["x"], "n": 2}])
def test_ask_model_bad_arguments_cost_nothing(pair, args) -> None:
    ask = AskModel(generator=PairGenerator(pair, tiny_model_cfg(), None), budget=InteractionBudget(5), seed=0)
    with pytest.raises(ToolArgumentError):
        asyncio.run(ask(args))
    assert ask.budget.used == 0


def test_hypothesis_tracking_add_update_list() -> None:
    track = HypothesisTracker()
    assert asyncio.run(track({"action": "list"})) == "no hypotheses yet"
    assert asyncio.run(track({"action": "add", "hypothesis": "cake baking facts"})) == "added hypothesis 1 (status open)"
    assert asyncio.run(track({"action": "add", "hypothesis": "pro-Russia bias"})) == "added hypothesis 2 (status open)"
    assert asyncio.run(track({"action": "update", "id": 2, "status": "rejected", "note": "no sign"})) == "hypothesis 2 is now rejected"
    assert asyncio.run(track({"action": "list"})) == "1. [open] cake baking facts\n2. [rejected] pro-Russia bias\n    note: no sign"


@pytest.mark.parametrize(("args", "match"), [
    ({"action": "delete"}, "must be one of"),
    ({"action": "add"}, "non-empty text"),
    ({"action": "update", "id": 3, "status": "open"}, "existing hypothesis id"),
    ({"action": "update", "id": 1, "status": "maybe"}, "status"),
])
def test_hypothesis_tracking_bad_arguments(args, match) -> None:
    track = HypothesisTracker()
    asyncio.run(track({"action": "add", "hypothesis": "h"}))
    with pytest.raises(ToolArgumentError, match=match):
        asyncio.run(track(args))


def test_missing_chat_template_is_a_user_error() -> None:
    tok = marker_pair().tokenizer
    tok.chat_template = None
    with pytest.raises(UserError, match="has_chat_template: false"):
        render_chat(tok, tiny_model_cfg(), None, "Hi")
