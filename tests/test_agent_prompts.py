"""Overview messages built from plain data, and the system prompt's budget."""

from __future__ import annotations

from logitdiff.agent.prompts import adl_overview, logitdiff_overview, system_prompt


def test_logitdiff_overview_lists_top_20_in_order_with_values() -> None:
    entries = [(f"tok{i}", 1.0 / (i + 1)) for i in range(25)]
    text = logitdiff_overview(entries, dataset_alias="ds1")
    lines = [line for line in text.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    assert len(lines) == 20
    assert lines[0] == " 1. 'tok0'  1"
    assert lines[19] == "20. 'tok19'  0.05"
    assert "tok20" not in text
    assert "(ds1)" in text


def test_logitdiff_overview_shows_invisible_characters() -> None:
    text = logitdiff_overview([(" cake", 0.5), ("\n", 0.25)])
    assert "' cake'  0.5" in text and "'\\n'  0.25" in text


def test_adl_overview_positions_0_to_4_positive_tokens_only() -> None:
    per_position = {p: [(f"p{p}a", 2.0), (f"p{p}b", 0.5), (f"p{p}neg", -1.0)] for p in range(7)}
    per_position[1] = [(f"big{i}", 30.0 - i) for i in range(25)]
    text = adl_overview(per_position, dataset_alias="ds2")
    body = [line for line in text.splitlines() if line.startswith("position ")]
    assert [line.split(":")[0] for line in body] == [f"position {p}" for p in range(5)]
    assert body[0] == "position 0: 'p0a' 2, 'p0b' 0.5"
    assert body[1].count("'big") == 20 and "'big19' 11" in body[1] and "big20" not in body[1]
    assert "neg" not in text and "p5a" not in text
    assert "(ds2)" in text


def test_system_prompt_states_budget_and_grammar() -> None:
    text = system_prompt(7)
    assert "budget is 7 model interactions" in text
    assert "CALL(tool_name: {json arguments})" in text and 'FINAL(description: "' in text
    assert "{budget}" not in text
