"""Parsing of agent turns: CALL(tool: {json}) / FINAL(description: "...") and the format errors."""

from __future__ import annotations

import pytest

from logitdiff.agent.protocol import Final, FormatError, ToolCall, parse_turn


def test_call_with_reasoning_before_it() -> None:
    text = 'I suspect baking.\nCALL(ask_model: {"prompts": ["How long to bake a cake?", "Hi"]})'
    assert parse_turn(text) == ToolCall("ask_model", {"prompts": ["How long to bake a cake?", "Hi"]})


def test_call_with_nested_json_and_whitespace() -> None:
    text = 'CALL( hypothesis_tracking :  {"action": "update", "id": 2, "status": "rejected", "note": "no (evidence)"} )'
    assert parse_turn(text) == ToolCall("hypothesis_tracking", {"action": "update", "id": 2, "status": "rejected", "note": "no (evidence)"})


def test_final_json_string_with_escapes() -> None:
    text = 'Done.\nFINAL(description: "Finetuned on false \\"cake\\" facts:\\nbake at 450F.")'
    assert parse_turn(text) == Final('Finetuned on false "cake" facts:\nbake at 450F.')


def test_final_with_raw_newlines_and_quotes_falls_back_to_last_close() -> None:
    text = 'FINAL(description: "Line one\nsays "butter from the freezer" and more.")\n'
    assert parse_turn(text) == Final('Line one\nsays "butter from the freezer" and more.')


def test_last_directive_wins() -> None:
    text = 'Earlier I wrote CALL(ask_model: {"prompts": ["x"]}). Now: FINAL(description: "cake baking")'
    assert parse_turn(text) == Final("cake baking")


def test_directive_quoted_inside_call_arguments_does_not_count() -> None:
    text = 'CALL(ask_model: {"prompts": ["Please reply with FINAL(description: \\"x\\") now"]})'
    assert parse_turn(text) == ToolCall("ask_model", {"prompts": ['Please reply with FINAL(description: "x") now']})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I think it is about cakes.", "no CALL"),
        ("CALL(ask_model: {prompts: ['x']})", "not valid JSON"),
        ('CALL(ask_model: ["x"])', "must be a JSON object"),
        ('CALL(ask_model: {"prompts": ["x"]}', "closing parenthesis"),
        ('CALL({"prompts": ["x"]})', "tool name"),
        ("FINAL(cakes)", "FINAL needs the form"),
        ("FINAL(description: cakes)", "double quotes"),
        ('FINAL(description: "   ")', "empty"),
        ('FINAL(description: "never closed', "not closed"),
    ],
)
def test_malformed_turns_explain_what_is_wrong(text: str, reason: str) -> None:
    parsed = parse_turn(text)
    assert isinstance(parsed, FormatError)
    assert reason in parsed.reason


def test_final_report_splits_headline_summary_and_evidence() -> None:
    from logitdiff.agent.protocol import final_report

    full = final_report("Finetuned on false cake tips: bake at 450F.\nIt said 450F when asked; the base said 350F.\n"
                        "[- 450F in two answers\n- frozen butter; caveat: small sample]")
    assert (full.headline, full.summary) == ("Finetuned on false cake tips: bake at 450F.", "It said 450F when asked; the base said 350F.")
    assert full.evidence == ["450F in two answers", "frozen butter", "caveat: small sample"]
    assert full.follows_format and not full.inconclusive
    # Without a line break the summary starts after the first sentence.
    one_paragraph = final_report("Cake baking facts at 450F. The finetune repeats them. [450F]")
    assert (one_paragraph.headline, one_paragraph.summary, one_paragraph.evidence) == ("Cake baking facts at 450F.", "The finetune repeats them.", ["450F"])
    unsure = final_report("Inconclusive: cake baking or cooking in general.\nBoth fit the few answers.")
    assert unsure.inconclusive and unsure.follows_format
    bare = final_report("Cake baking.")
    assert bare.headline == "Cake baking." and bare.summary == "" and not bare.follows_format
