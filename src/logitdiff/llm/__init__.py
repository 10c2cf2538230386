"""OpenAI-compatible LLM access shared by the judge and the agent."""

from logitdiff.llm.client import Completion, LLMCallError, LLMClient, LLMUsage
from logitdiff.llm.spec import LLMSpec, parse_llm_id

__all__ = ["Completion", "LLMCallError", "LLMClient", "LLMSpec", "LLMUsage", "parse_llm_id"]
