"""Interpretability agent: investigates a model pair with tools, then a judge grades its description."""

from logitdiff.agent.evaluate import evaluate_agent
from logitdiff.agent.loop import AgentCaps
from logitdiff.agent.prompts import adl_overview, logitdiff_overview
from logitdiff.agent.records import AgentRunRecord, AgentStats, Grade, Message

__all__ = ["AgentCaps", "AgentRunRecord", "AgentStats", "Grade", "Message", "adl_overview", "evaluate_agent", "logitdiff_overview"]
