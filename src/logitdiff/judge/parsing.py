"""Strict parsing of `ANSWER[i]: RELEVANT|IRRELEVANT` lines."""

from __future__ import annotations

import re

from logitdiff.results.graded import Label

# One whole line; tolerates markdown emphasis/bullets around it and any letter case, nothing else.
_LINE = re.compile(r"^[\s*`>-]*ANSWER\s*\[\s*(\d+)\s*\]\s*:?[\s*`]*:?\s*(RELEVANT|IRRELEVANT)[\s*`.]*$", re.IGNORECASE)


def parse_answers(text: str, n: int) -> dict[int, Label]:
    """Labels by 1-based candidate number. Numbers outside 1..n are ignored; a number answered more
    than once takes its last answer (as the reference does: a judge that corrects itself means the
    correction)."""
    found: dict[int, Label] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        index, label = int(match.group(1)), match.group(2).upper()
        if 1 <= index <= n:
            found[index] = label  # type: ignore[assignment]
    return found


def missing_indices(answers: dict[int, Label], n: int) -> list[int]:
    return [i for i in range(1, n + 1) if i not in answers]
