"""Pydantic records of one agent run: transcript, usage statistics and grades (saved as JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str

    def as_chat(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class AgentStats(BaseModel):
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_interactions: int = 0
    format_errors: int = 0
    tool_errors: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class FinalReport(BaseModel):
    """A FINAL description split by its format: one headline sentence (domain and behaviour), a summary,
    and an optional bracketed list of evidence. `follows_format`: both the headline and the summary are there."""

    headline: str
    summary: str
    evidence: list[str] = Field(default_factory=list)
    inconclusive: bool = False
    follows_format: bool


class Grade(BaseModel):
    grader_run: int
    score: int | None = Field(default=None, ge=1, le=5)
    reasoning: str = ""
    # Every judge answer, including ones that had to be re-asked for a missing SCORE line.
    raw_responses: list[str] = Field(default_factory=list)
    failed: str | None = None


class AgentRunRecord(BaseModel):
    run: int
    seed: int
    agent_id: str
    grader_id: str
    budget: int
    blackbox: bool
    transcript: list[Message]
    description: str | None
    final: FinalReport | None = None  # the description's parts (None: no FINAL, or a record written before they were stored)
    stats: AgentStats
    grades: list[Grade] = Field(default_factory=list)
    failed: str | None = None

    @property
    def mean_score(self) -> float | None:
        scores = [g.score for g in self.grades if g.score is not None]
        return sum(scores) / len(scores) if scores else None
