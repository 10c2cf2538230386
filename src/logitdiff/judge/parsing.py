"""Reading the judge's answer lines `ANSWER[i]: RELEVANT|IRRELEVANT` out of a reply that may reason first."""

from __future__ import annotations

import re

from logitdiff.results.graded import Label

# One whole line; tolerates markdown emphasis/bullets around it, a closing '.' or '!', and any letter
# case. A line that adds words after the label is not an answer (a judge still thinking aloud).
_LINE = re.compile(r"^[\s*`>-]*ANSWER\s*\[\s*(\d+)\s*\]\s*:?[\s*`]*:?\s*(RELEVANT|IRRELEVANT)[\s*`.!]*$", re.IGNORECASE)


def parse_answers(text: str, n: int) -> dict[int, Label]:
    """Labels by 1-based candidate number, read from every answer line of the reply, so reasoning before
    the answer block does no harm. Numbers outside 1..n are ignored; a number answered more than once
    takes its last answer (as the reference does: a judge that corrects itself means the correction)."""
    found: dict[int, Label] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        index, label = int(match.group(1)), match.group(2).upper()
        if 1 <= index <= n:
            found[index] = label  # type: ignore[assignment]
    return found


def labels_in_order(answers: dict[int, Label], n: int) -> list[Label]:
    """One label per candidate, UNKNOWN where the reply has no answer line for it."""
    return [answers.get(i, "UNKNOWN") for i in range(1, n + 1)]
