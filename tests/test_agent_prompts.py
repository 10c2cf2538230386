"""What the agent reads: the system prompt, the opening reminder, the method views and the drill-down tool."""

from __future__ import annotations

import asyncio
import json

import pytest

from logitdiff.agent.drilldown import LensDetails
from logitdiff.agent.prompts import system_prompt, opening_message
from logitdiff.agent.tools import ToolArgumentError
from logitdiff.agent.views import blackbox_view, logitdiff_view
from logitdiff.methods.adl import DrillLayer, DrillLens, LensTokens
from logitdiff.registry.adl import AdlLensSpec, AdlPatchscopeSpec


def _payload(overview: str | None) -> dict:
    assert overview is not None
    return json.loads(overview)["datasets"]["ds1"]


def test_logitdiff_overview_is_one_token_group_under_the_token_budget() -> None:
    entries = [(f"tok{i}", 25.0 / (i + 1)) for i in range(25)]
    view = logitdiff_view(entries, samples=1000)
    data = _payload(view.overview)
    (group,) = data["token_groups"]
    assert len(group) == 20 and group[0] == {"token_str": "tok0", "ordering_value": 25.0}
    assert group[19] == {"token_str": "tok19", "ordering_value": 1.25} and "tok20" not in view.overview  # type: ignore[operator]
    assert data["num_samples"] == 1000 and data["metadata"]["num_tokens_shown"] == 20
    assert len(_payload(logitdiff_view(entries, samples=10, budget=7).overview)["token_groups"][0]) == 7
    assert "very noisy" in view.conduct and "zoomed-out" in view.conduct and "zoomed-in" in view.conduct
    assert view.tools == () and not view.blackbox


def test_logitdiff_overview_keeps_invisible_characters() -> None:
    group = _payload(logitdiff_view([(" cake", 0.5), ("\n", 0.25)], samples=1).overview)["token_groups"][0]
    assert [g["token_str"] for g in group] == [" cake", "\n"]


def _drill(positions: int = 8) -> DrillLens:
    def top(layer: int, p: int) -> LensTokens:
        return LensTokens(token_ids=list(range(100)), tokens=[f"L{layer}p{p}t{i}" for i in range(100)], probs=[0.5 / (i + 1) for i in range(100)])

    layers = [DrillLayer(relative_layers=[r], layer=layer, positions=list(range(positions)), top=[top(layer, p) for p in range(positions)])
              for r, layer in ((0.25, 3), (0.5, 7), (0.75, 11))]
    return DrillLens(samples=10, positions=positions, layers=layers)


def test_adl_overview_per_position_with_probabilities_and_the_drill_down_tool() -> None:
    per_position = {p: [(f"p{p}t{i}", 0.1 / (i + 1)) for i in range(25)] for p in range(5)}
    view = AdlLensSpec().agent_overview(per_position, samples=30, relative_layer=0.5, layer=7, drill=_drill())
    data = _payload(view.overview)
    shown = data["layers"]["7"]["logit_lens"]["per_position"]
    assert list(shown) == ["0", "1", "2", "3", "4"] and data["available_positions"] == [0, 1, 2, 3, 4]
    assert shown["1"]["tokens"][:2] == ["p1t0", "p1t1"] and len(shown["1"]["tokens"]) == 20 and shown["1"]["probs"][1] == "5.000e-02"
    assert [t.name for t in view.tools] == ["get_logitlens_details"]
    assert "get_logitlens_details" in view.tool_docs and "3 (relative 0.25), 7 (relative 0.5), 11 (relative 0.75)" in view.tool_docs
    assert "positions 0 to 7" in view.tool_docs
    assert "Evidence hygiene" in view.conduct and "layer 7 (relative depth 0.5)" in view.context
    patched = AdlPatchscopeSpec().agent_overview(per_position, samples=30, relative_layer=0.5, layer=7, drill=_drill())
    assert "patch_scope" in _payload(patched.overview)["layers"]["7"] and "Patchscope" in patched.context


def test_drill_down_reads_other_positions_and_layers() -> None:
    tool = LensDetails(drill=_drill(), default_layer=7, dataset="ds1")
    default = json.loads(asyncio.run(tool({"positions": [6]})))
    assert default["layer"] == 7 and default["per_position"]["6"]["tokens"] == [f"L7p6t{i}" for i in range(20)]
    assert default["per_position"]["6"]["probs"][:2] == ["5.000e-01", "2.500e-01"]
    by_relative = json.loads(asyncio.run(tool({"positions": [0, 7], "layer": 0.75, "k": 100, "dataset": "ds1"})))
    assert by_relative["layer"] == 11 and len(by_relative["per_position"]["7"]["tokens"]) == 100
    assert json.loads(asyncio.run(tool({"positions": [2], "layer": 3, "k": 3})))["per_position"]["2"]["tokens"] == ["L3p2t0", "L3p2t1", "L3p2t2"]


@pytest.mark.parametrize(("args", "match"), [
    ({}, "positions"),
    ({"positions": [8]}, "from 0 to 7"),
    ({"positions": [1], "layer": 5}, "stored layers: 3"),
    ({"positions": [1], "layer": 0.6}, "not stored"),
    ({"positions": [1], "k": 101}, "1 to 100"),
    ({"positions": [1], "dataset": "fineweb"}, "ds1"),
    ({"positions": [1], "depth": 2}, "unknown argument"),
])
def test_drill_down_bad_arguments(args: dict, match: str) -> None:
    with pytest.raises(ToolArgumentError, match=match):
        asyncio.run(LensDetails(drill=_drill(), default_layer=7, dataset="ds1")(args))


def test_system_prompt_states_procedure_budgets_and_final_format() -> None:
    view = logitdiff_view([(" cake", 1.0)], samples=5)
    text = system_prompt(7, 100, view.context, view.tool_docs, view.conduct)
    assert "model interactions: 7 in total" in text and "agent LLM calls: 100 in total" in text
    assert "Record every hypothesis with hypothesis_tracking" in text and "asking both models" in text
    assert "Use most or all of your model interactions" in text and "very noisy" in text
    assert "CALL(tool_name: {\"arg\": ...})" in text and 'FINAL(description: "<ONE sentence' in text
    assert 'FINAL(description: "Inconclusive:' in text and "bracketed list" in text
    assert "{" + "budget}" not in text and "ask many" not in text
    assert "ask many (10 to 20 or more) questions" in system_prompt(50, 100, view.context)


def test_opening_reminds_to_verify_and_asks_one_question_at_a_time_under_10() -> None:
    small = opening_message('{"datasets": {}}', 5)
    assert small.startswith('OVERVIEW:\n{"datasets": {}}\n\n') and "verify your hypotheses by talking to the models" in small
    assert "ask ONE question per ask_model call" in small
    assert "ONE question" not in opening_message("{}", 10)
    assert blackbox_view().overview is None and "OVERVIEW" not in opening_message(None, 5)
