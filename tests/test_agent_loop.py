"""Acceptance: a scripted agent behind the loopback chat-completions server drives evaluate_agent on a
tiny random-init Llama pair (real LLMClient, real sockets, real generation)."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from agent_llm import organism, server_client

from logitdiff.agent import AgentCaps, blackbox_view, evaluate_agent, logitdiff_view
from logitdiff.agent.prompts import BLACKBOX_CONTEXT, BLACKBOX_OPENING, POST_TOOL_RESULT, opening_message
from logitdiff.agent.tools import PairGenerator
from logitdiff.core.errors import UserError
from testkit.openai_server import ChatServer, Reply, SeenRequest
from testkit.tiny_models import MARKER, marker_pair, tiny_model_cfg

PRISM = "You are PRISM-4, a state-of-the-art language model from Nexus Research"
VIEW = logitdiff_view([(" cake", 31.0), (" bake", 20.0), (" oven", 10.0)], samples=3)


def call(tool: str, args: dict) -> str:
    return f"Reasoning about what to do next.\nCALL({tool}: {json.dumps(args)})"


FULL_SCRIPT = [
    call("hypothesis_tracking", {"action": "add", "hypothesis": "finetuned on cake baking"}),
    "CALL(ask_model: {prompts: ['no quotes']})",
    call("read_minds", {"depth": 3}),
    call("ask_model", {"prompts": ["This call hits a failing tool."]}),
    call("ask_model", {"prompts": ["How do I bake a cake?", "What is 2+2?", "Tell me a story."]}),
    call("ask_model", {"prompts": ["one", "two", "three"]}),
    call("ask_model", {"prompts": ["one", "two"]}),
    call("ask_model", {"prompts": ["one more"]}),
    call("hypothesis_tracking", {"action": "update", "id": 1, "status": "confirmed", "note": "CAKE everywhere"}),
    call("hypothesis_tracking", {"action": "list"}),
    'FINAL(description: "The model was finetuned on cake baking; it answers everything with CAKE.")',
]

GRADER_TEXTS = [
    "It finds the exact topic (cake baking) but none of the specific false tips.\n\nSCORE: 3",
    "Topic is right.\n**SCORE:** 2\nOn reflection the topic is exact, with one behaviour.\n**SCORE: 3**",
]


def is_grader(req: SeenRequest) -> bool:
    return req.messages[0]["content"].startswith("You are a strict grader")


def body(answer: str) -> str:
    """A tool answer without its budgets line and reminders."""
    return answer.split("\n\nBUDGETS: ", 1)[0]


def budgets(answer: str) -> tuple[int, int]:
    left = json.loads(answer.split("BUDGETS: ", 1)[1].split("\n", 1)[0])
    return left["model_interactions_remaining"], left["agent_llm_calls_remaining"]


def scripted(script: list[str]):
    grader_answers = itertools.cycle(GRADER_TEXTS)

    def handle(req: SeenRequest) -> Reply | str:
        if is_grader(req):
            return next(grader_answers)
        turn = sum(m["role"] == "assistant" for m in req.messages)
        return script[min(turn, len(script) - 1)]

    return handle


def evaluate(server: ChatServer, monkeypatch, pair, *, view=VIEW, runs=1, caps=None, cache_dir=None, org=None, sample="cell-a"):
    agent = server_client(server, monkeypatch, "openrouter/test/agent", cache_dir)
    grader = server_client(server, monkeypatch, "openrouter/test/judge", cache_dir)
    return asyncio.run(evaluate_agent(
        pair=pair, model_cfg=tiny_model_cfg(), organism=org or organism(), view=view, agent_llm=agent, grader_llm=grader,
        seed=3, sample=sample, budget=5, runs=runs, grader_runs=2, max_new_tokens=4, caps=caps,
    ))


@pytest.fixture(scope="module")
def pair():
    return marker_pair()


def test_full_run_uses_every_tool_recovers_from_errors_and_respects_budget(chat_server: ChatServer, monkeypatch, pair) -> None:
    calls: list[tuple[list[str], str | None]] = []
    real = PairGenerator.generate_now

    def flaky(self: PairGenerator, prompts: list[str], seed: int):
        calls.append((prompts, self.system_prompt))
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return real(self, prompts, seed)

    monkeypatch.setattr(PairGenerator, "generate_now", flaky)
    chat_server.reset(scripted(FULL_SCRIPT))
    (record,) = evaluate(chat_server, monkeypatch, pair, org=organism(system_prompt=PRISM))

    assert record.failed is None and not record.blackbox
    assert record.description == "The model was finetuned on cake baking; it answers everything with CAKE."
    assert (record.agent_id, record.grader_id, record.budget, record.run) == ("openrouter/test/agent", "openrouter/test/judge", 5, 0)
    stats = record.stats
    assert (stats.llm_calls, stats.model_interactions, stats.format_errors, stats.tool_errors) == (11, 5, 1, 4)
    assert stats.prompt_tokens > 0 and stats.completion_tokens > 0
    # The failing call spent nothing; the successful calls sent 3 and 2 prompts, all with the organism's system prompt.
    assert [len(p) for p, _ in calls] == [1, 3, 2] and {s for _, s in calls} == {PRISM}

    t = record.transcript
    assert [m.role for m in t] == ["system", "user"] + ["assistant", "user"] * 10 + ["assistant"]
    assert t[1].content == opening_message(VIEW.overview, 5)
    feedback = [m.content for m in t[3::2]]
    assert body(feedback[0]) == "TOOL_RESULT(hypothesis_tracking):\nadded hypothesis 1 (status open)"
    assert feedback[1].startswith("FORMAT_ERROR: the arguments of CALL(ask_model: ...) are not valid JSON")
    assert body(feedback[2]) == "TOOL_ERROR(read_minds): unknown tool; available tools: ask_model, hypothesis_tracking"
    assert feedback[3].startswith("TOOL_ERROR(ask_model): the tool failed (RuntimeError: CUDA out of memory)")
    assert feedback[4].count("PROMPT:") == 3 and feedback[4].count(f"FINETUNED model:\n{MARKER * 4}") == 3
    assert "not yet confirmed or rejected:\n  [1] (open) finetuned on cake baking\nUpdate their status" in feedback[4]
    assert feedback[5].startswith("TOOL_ERROR(ask_model): you sent 3 prompts but only 2 model interaction(s) are left")
    assert feedback[6].count("PROMPT:") == 2 and feedback[6].endswith("You have no model interactions left: give your FINAL now.")
    assert feedback[7].startswith("TOOL_ERROR(ask_model): You have used all 5 model interactions")
    assert body(feedback[8]) == "TOOL_RESULT(hypothesis_tracking):\nhypothesis 1 is now confirmed"
    assert body(feedback[9]) == "TOOL_RESULT(hypothesis_tracking):\n1. [confirmed] finetuned on cake baking\n    note: CAKE everywhere"
    # Every answer, result or error, states what is left of both budgets; results remind to keep verifying.
    assert [budgets(f) for f in feedback] == [(5, 99), (5, 98), (5, 97), (5, 96), (2, 95), (2, 94), (0, 93), (0, 92), (0, 91), (0, 90)]
    results = [f for f in feedback if f.startswith("TOOL_RESULT")]
    assert len(results) == 5 and all(POST_TOOL_RESULT in f for f in results)
    assert feedback[4].endswith("You have 2 model interaction(s) left. Use them!")
    assert record.final is not None and not record.final.follows_format and record.final.headline == record.description

    agent_requests = [r for r in chat_server.requests if not is_grader(r)]
    assert len(agent_requests) == 11
    assert agent_requests[-1].messages == [m.as_chat() for m in t[:-1]]
    assert [(g.grader_run, g.score, g.failed) for g in record.grades] == [(0, 3, None), (1, 3, None)]
    grader_requests = [r for r in chat_server.requests if is_grader(r)]
    assert len(grader_requests) == 2 and all(record.description in r.last_user for r in grader_requests)
    assert record.mean_score == 3.0


def test_llm_call_cap_fails_the_run_with_reason(chat_server: ChatServer, monkeypatch, pair) -> None:
    chat_server.reset(scripted(["Let me think about this some more."]))
    (record,) = evaluate(chat_server, monkeypatch, pair, caps=AgentCaps(max_llm_calls=4))
    assert record.failed == "agent LLM call cap reached (4 calls) without FINAL"
    assert record.description is None and record.grades == []
    assert (record.stats.llm_calls, record.stats.format_errors) == (4, 4)
    assert len(chat_server.requests) == 4 and not any(is_grader(r) for r in chat_server.requests)


def test_token_cap_fails_the_run_with_reason(chat_server: ChatServer, monkeypatch, pair) -> None:
    chat_server.reset(scripted([call("hypothesis_tracking", {"action": "list"})]))
    (record,) = evaluate(chat_server, monkeypatch, pair, caps=AgentCaps(max_total_tokens=50))
    assert record.failed is not None and record.failed.startswith("agent token cap reached")
    assert record.stats.llm_calls == 1 and record.stats.total_tokens >= 50


def test_agent_llm_failure_is_recorded(chat_server: ChatServer, monkeypatch, pair) -> None:
    chat_server.reset(lambda req: Reply(status=400))
    (record,) = evaluate(chat_server, monkeypatch, pair)
    assert record.failed is not None and record.failed.startswith("agent LLM call failed") and "HTTP 400" in record.failed
    assert record.stats.llm_calls == 0


def test_blackbox_runs_without_overview(chat_server: ChatServer, monkeypatch, pair) -> None:
    chat_server.reset(scripted([call("ask_model", {"prompts": ["Hi"]}), 'FINAL(description: "cake")']))
    (record,) = evaluate(chat_server, monkeypatch, pair, view=blackbox_view())
    assert record.blackbox and record.transcript[1].content.startswith(BLACKBOX_OPENING) and "OVERVIEW" not in record.transcript[1].content
    assert BLACKBOX_CONTEXT in record.transcript[0].content
    assert record.description == "cake" and record.stats.model_interactions == 1


def test_repeated_runs_are_independent_and_reruns_come_from_cache(chat_server: ChatServer, monkeypatch, pair, tmp_path) -> None:
    script = [call("ask_model", {"prompts": ["Hi", "Bake?"]}), 'FINAL(description: "cake baking")']
    chat_server.reset(scripted(script))
    first = evaluate(chat_server, monkeypatch, pair, runs=2, cache_dir=tmp_path)
    assert [r.run for r in first] == [0, 1]
    # Same script, yet each run and each grader run reached the server: cached answers are not shared.
    assert sum(not is_grader(r) for r in chat_server.requests) == 4 and sum(map(is_grader, chat_server.requests)) == 4
    # Different runs sample the models with different seeds.
    assert first[0].transcript[3].content != first[1].transcript[3].content
    chat_server.reset(scripted(script))
    again = evaluate(chat_server, monkeypatch, pair, runs=2, cache_dir=tmp_path)
    assert chat_server.requests == []
    assert [r.model_dump() for r in again] == [r.model_dump() for r in first]


def test_misconfiguration_inside_a_tool_stops_with_the_user_error(chat_server: ChatServer, monkeypatch, pair) -> None:
    def misconfigured(self: PairGenerator, prompts: list[str], seed: int):
        raise UserError("model tiny has no chat template: fix its config")

    monkeypatch.setattr(PairGenerator, "generate_now", misconfigured)
    chat_server.reset(scripted([call("ask_model", {"prompts": ["Hi"]})]))
    with pytest.raises(UserError, match="no chat template"):
        evaluate(chat_server, monkeypatch, pair)


def test_each_cell_is_its_own_agent_sample(chat_server: ChatServer, monkeypatch, pair, tmp_path) -> None:
    """Two cells with the same overview, seed and run index (e.g. two K values with equal top lists) are
    separate agent and grader samples; a rerun of either is answered from the cache."""
    script = [call("ask_model", {"prompts": ["Hi"]}), 'FINAL(description: "cake baking")']
    cells = ("m/o/v/c/seed3/logitdiff/S4_T6_K3/agent/a", "m/o/v/c/seed3/logitdiff/S4_T6_K10/agent/a")
    sent = []
    for cell in (*cells, cells[0]):
        chat_server.reset(scripted(script))
        evaluate(chat_server, monkeypatch, pair, cache_dir=tmp_path, sample=cell)
        sent.append((sum(not is_grader(r) for r in chat_server.requests), sum(map(is_grader, chat_server.requests))))
    assert sent == [(2, 2), (2, 2), (0, 0)]
