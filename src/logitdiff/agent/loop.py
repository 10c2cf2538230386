"""The agent loop: ask the agent LLM, parse its turn, run the tool, feed the result back, until FINAL.

Nothing the agent writes can crash the loop: malformed turns, unknown tools, bad arguments and tool
exceptions all become messages. The run ends with FINAL, or fails when a hard cap (LLM calls, tokens)
is hit or the agent LLM fails for good. Only UserError (misconfiguration the user must fix) propagates.
Every answer to the agent ends with what is left of both budgets (model interactions, agent LLM calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from logitdiff.agent.prompts import format_error, tool_error, tool_result
from logitdiff.agent.protocol import Final, FormatError, ToolCall, final_report, parse_turn
from logitdiff.agent.records import AgentStats, FinalReport, Message
from logitdiff.agent.tools import InteractionBudget, Tool, ToolArgumentError
from logitdiff.core.errors import UserError
from logitdiff.llm import LLMCallError, LLMClient


@dataclass(frozen=True)
class AgentCaps:
    max_llm_calls: int = 100
    max_total_tokens: int = 2_000_000


@dataclass
class AgentOutcome:
    transcript: list[Message]
    description: str | None
    final: FinalReport | None = None
    stats: AgentStats = field(default_factory=AgentStats)
    failed: str | None = None


async def run_agent(
    *, llm: LLMClient, system: str, opening: str, tools: Mapping[str, Tool], caps: AgentCaps, cache_tag: str,
    interactions: InteractionBudget,
) -> AgentOutcome:
    """Run one investigation. `cache_tag` keeps repeated runs from sharing cached LLM answers."""
    out = AgentOutcome(transcript=[Message(role="system", content=system), Message(role="user", content=opening)], description=None)
    stats = out.stats
    while True:
        if stats.llm_calls >= caps.max_llm_calls:
            out.failed = f"agent LLM call cap reached ({caps.max_llm_calls} calls) without FINAL"
            return out
        if stats.total_tokens >= caps.max_total_tokens:
            out.failed = f"agent token cap reached ({stats.total_tokens} >= {caps.max_total_tokens} tokens) without FINAL"
            return out
        try:
            reply = await llm.complete([m.as_chat() for m in out.transcript], cache_tag=cache_tag)
        except LLMCallError as exc:
            out.failed = f"agent LLM call failed: {exc}"
            return out
        stats.llm_calls += 1
        stats.prompt_tokens += reply.prompt_tokens
        stats.completion_tokens += reply.completion_tokens
        out.transcript.append(Message(role="assistant", content=reply.text))
        turn = parse_turn(reply.text)
        if isinstance(turn, Final):
            out.description = turn.description
            out.final = final_report(turn.description)
            return out
        if isinstance(turn, FormatError):
            stats.format_errors += 1
            answer = format_error(turn.reason, interactions.remaining, caps.max_llm_calls - stats.llm_calls)
        else:
            answer = await _run_tool(turn, tools, stats, interactions, caps)
        out.transcript.append(Message(role="user", content=answer))


async def _run_tool(call: ToolCall, tools: Mapping[str, Tool], stats: AgentStats, interactions: InteractionBudget, caps: AgentCaps) -> str:
    def error(text: str) -> str:
        stats.tool_errors += 1
        return tool_error(call.tool, text, interactions.remaining, caps.max_llm_calls - stats.llm_calls)

    tool = tools.get(call.tool)
    if tool is None:
        return error(f"unknown tool; available tools: {', '.join(tools)}")
    try:
        text = await tool(call.args)
    except ToolArgumentError as exc:
        return error(str(exc))
    except UserError:  # a misconfiguration fails every call: stop with its one-line fix instead
        raise
    except Exception as exc:  # noqa: BLE001 - a failing tool must never end the investigation
        return error(f"the tool failed ({type(exc).__name__}: {exc}); try again or use another tool")
    return tool_result(call.tool, text, interactions.remaining, caps.max_llm_calls - stats.llm_calls)
