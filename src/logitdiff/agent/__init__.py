"""Interpretability agent: investigates a model pair with tools, then a judge grades its description."""

from logitdiff.agent.evaluate import evaluate_agent
from logitdiff.agent.loop import AgentCaps
from logitdiff.agent.records import AgentRunRecord, AgentStats, FinalReport, Grade, Message
from logitdiff.agent.views import AgentView, adl_view, blackbox_view, logitdiff_view

__all__ = ["AgentCaps", "AgentRunRecord", "AgentStats", "AgentView", "FinalReport", "Grade", "Message", "adl_view",
           "blackbox_view", "evaluate_agent", "logitdiff_view"]
