"""Strict parsing of `ANSWER[i]: RELEVANT|IRRELEVANT` lines."""

from __future__ import annotations

import re
from typing import Literal

Label = Literal["RELEVANT", "IRRELEVANT", "UNKNOWN"]

# One whole line; tolerates markdown emphasis/bullets around it and any letter case, nothing else.
_LINE = re.compile(r"^[\s*`>-]*ANSWER\s*\[\s*(\d+)\s*\]\s*:?[\s*`]*:?\s*(RELEVANT|IRRELEVANT)[\s*`.]*$", re.IGNORECASE)


def parse_answers(text: str, n: int) -> dict[int, Label]:
    """Labels by 1-based candidate number. Numbers outside 1..n are ignored; a number given two
    different labels is treated as unanswered."""
    found: dict[int, Label] = {}
    conflicting: set[int] = set()
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        index, label = int(match.group(1)), match.group(2).upper()
        if not 1 <= index <= n:
            continue
        if found.get(index, label) != label:
            conflicting.add(index)
        found[index] = label  # type: ignore[assignment]
    return {i: lab for i, lab in found.items() if i not in conflicting}


def missing_indices(answers: dict[int, Label], n: int) -> list[int]:
    return [i for i in range(1, n + 1) if i not in answers]
