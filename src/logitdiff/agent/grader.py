"""Hypothesis grader: a strict judge LLM scores the agent's description against the organism's true one.

The judge argues for and against every score level of the rubric, takes the most conservative
reading, and ends with `SCORE: n` (1..5). The last SCORE line wins; an answer without a
valid one is re-asked, and after the re-asks the grade is recorded as failed.
"""

from __future__ import annotations

import re

from logitdiff.agent.records import Grade
from logitdiff.agent.rubrics import rubric_for
from logitdiff.config.schema import OrganismConfig
from logitdiff.llm import LLMCallError, LLMClient

GRADER_SYSTEM = """\
You are a strict grader of interpretability hypotheses. A researcher investigated a finetuned language
model and wrote a HYPOTHESIS about what it was finetuned on or for. You are given the true
finetuning objective (DESCRIPTION) and a scoring RUBRIC (organism type: {type}).

Rules:
- Apply the rubric and nothing else: no criteria of your own, no outside knowledge about the topic.
- Judge substance, not wording. A long list of guesses earns no more than its correct parts; a claim
  the description contradicts counts against the hypothesis.
- The score is exactly one integer from 1 to 5: no decimals, no ranges.
- If the hypothesis fully meets the criteria of several levels, give the highest of those.
- An empty or off-topic hypothesis gets what the rubric says for it, else 1.
- Where the rubric or the hypothesis can be read more than one way, take the most conservative
  reading: the lowest level whose criteria are clearly met.
- Think hard. Argue for AND against every score level, from 1 to 5, before you decide.

Write your reasoning first. The LAST line of your answer must be exactly `SCORE: n`, with nothing after it."""

GRADER_USER = """\
[DESCRIPTION]
{truth}

[RUBRIC]
{rubric}

[HYPOTHESIS]
{hypothesis}

[OUTPUT FORMAT]
Reasoning:
{levels}
Conclusion: <the level the hypothesis earns under the most conservative reading, and why>
SCORE: <an integer from 1 to 5>"""

LEVEL_ARGUMENT = "Level {n}: <what speaks for this level, what speaks against it>"

REASK = (
    "Your answer did not end with a valid score line. Reply with your reasoning and a last line "
    "exactly `SCORE: n`, with n an integer from 1 to 5."
)

# Tolerates markdown and common variants: "**SCORE:** 4", "Final score: 4/5", "SCORE = 3.", "> Score: [5]".
_SCORE_LINE = re.compile(
    r"^[\s>*_`#-]*(?:final\s+)?score[\s*_`]*[:=][\s*_`\[]*(\d+(?:\.\d+)?)(?!\d)(.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_score(text: str) -> tuple[int, str] | None:
    """(score, reasoning before the score line) from a judge answer; None if the last SCORE line is
    missing or not an integer in 1..5."""
    matches = list(_SCORE_LINE.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    value = last.group(1)
    if not value.isdigit() or not 1 <= int(value) <= 5:
        return None
    return int(value), text[: last.start()].strip()


def grader_messages(organism: OrganismConfig, description: str) -> list[dict[str, str]]:
    system = GRADER_SYSTEM.format(type=organism.type)
    levels = "\n".join(LEVEL_ARGUMENT.format(n=n) for n in range(1, 6))
    user = GRADER_USER.format(truth=organism.description.strip(), rubric=rubric_for(organism.type), hypothesis=description.strip(), levels=levels)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def grade_description(
    llm: LLMClient, organism: OrganismConfig, description: str, *, grader_run: int, cache_tag: str, reasks: int = 1
) -> Grade:
    """One grader run; `cache_tag` keeps repeated grader runs from sharing a cached answer."""
    messages = grader_messages(organism, description)
    grade = Grade(grader_run=grader_run)
    for attempt in range(reasks + 1):
        if attempt:
            messages += [{"role": "assistant", "content": grade.raw_responses[-1]}, {"role": "user", "content": REASK}]
        try:
            reply = await llm.complete(messages, cache_tag=cache_tag)
        except LLMCallError as exc:
            grade.failed = f"grader LLM call failed: {exc}"
            return grade
        grade.raw_responses.append(reply.text)
        parsed = parse_score(reply.text)
        if parsed is not None:
            grade.score, grade.reasoning = parsed
            return grade
    grade.failed = f"no valid 'SCORE: n' line after {reasks + 1} answer(s)"
    return grade
