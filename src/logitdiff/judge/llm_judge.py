"""The LLM judge: one chat request per ordering, one re-ask for missing answer lines, UNKNOWN after that."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.parsing import missing_indices, parse_answers
from logitdiff.judge.prompts import reask_messages, relevance_messages
from logitdiff.judge.relevance import OrderingAnswer
from logitdiff.llm.client import LLMClient
from logitdiff.results.graded import Label


@dataclass
class LLMJudge:
    client: LLMClient

    @property
    def id(self) -> str:
        return self.client.spec.id

    async def label(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str]) -> OrderingAnswer:
        n = len(tokens)
        messages = relevance_messages(organism.description, frequent, tokens)
        first = await self.client.complete(messages)
        answers = parse_answers(first.text, n)
        responses = [first.text]
        missing = missing_indices(answers, n)
        if missing:
            second = await self.client.complete(reask_messages(messages, first.text, missing))
            responses.append(second.text)
            retry = parse_answers(second.text, n)
            answers.update({i: retry[i] for i in missing if i in retry})
        labels: list[Label] = [answers.get(i, "UNKNOWN") for i in range(1, n + 1)]
        return OrderingAnswer(labels=labels, responses=responses)

    def usage_summary(self) -> str:
        return self.client.usage.summary(self.id)
