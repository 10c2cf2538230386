"""The LLM judge: one ordering is asked up to three times until a reply labels every candidate, then
once more at temperature 0; the reply with the fewest missing labels is used (a tie goes to the
temperature-0 one), and candidates it leaves out are UNKNOWN."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.parsing import labels_in_order, parse_answers
from logitdiff.judge.prompts import relevance_messages
from logitdiff.judge.relevance import OrderingAnswer
from logitdiff.llm.client import LLMCallError, LLMClient
from logitdiff.results.graded import Label

TRIES = 3
FALLBACK_TEMPERATURE = 0.0


def _try_tag(sample: str, attempt: int) -> str:
    # Each try is its own sample (the same request asked again); a rerun finds them all in the cache.
    return f"{sample}|try{attempt}"


@dataclass
class LLMJudge:
    client: LLMClient

    @property
    def id(self) -> str:
        return self.client.spec.id

    def first_request_cached(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str], sample: str) -> bool:
        """Whether the first try of `label` for this ordering and sample would come from the cache."""
        return self.client.is_cached(relevance_messages(organism.description, frequent, tokens), cache_tag=_try_tag(sample, 0))

    async def label(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str], *,
                    sample: str = "", refresh: bool = False) -> OrderingAnswer:
        """`sample` names the (cell, list, ordering) these requests belong to; `refresh` asks afresh
        instead of reading cached replies (and replaces them)."""
        n = len(tokens)
        messages = relevance_messages(organism.description, frequent, tokens)
        responses: list[str] = []
        best: tuple[int, list[Label], int] | None = None  # (missing labels, labels, reply index)
        for attempt in range(TRIES):
            reply = await self.client.complete(messages, cache_tag=_try_tag(sample, attempt), refresh=refresh)
            responses.append(reply.text)
            labels = labels_in_order(parse_answers(reply.text, n), n)
            missing = labels.count("UNKNOWN")
            if missing == 0:
                return OrderingAnswer(labels=labels, responses=responses, used=attempt)
            if best is None or missing < best[0]:
                best = (missing, labels, attempt)
        assert best is not None
        try:
            final = await self.client.complete(messages, temperature=FALLBACK_TEMPERATURE,
                                               cache_tag=f"{sample}|temperature0", refresh=refresh)
        except LLMCallError:
            # Some reasoning models refuse temperature 0: the best earlier reply stands.
            return OrderingAnswer(labels=best[1], responses=responses, used=best[2])
        responses.append(final.text)
        labels = labels_in_order(parse_answers(final.text, n), n)
        if labels.count("UNKNOWN") <= best[0]:
            best = (labels.count("UNKNOWN"), labels, len(responses) - 1)
        return OrderingAnswer(labels=best[1], responses=responses, used=best[2])

    def usage_summary(self) -> str:
        return self.client.usage.summary(self.id)
