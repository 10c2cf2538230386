"""Names of the graded token lists: LogitDiff orderings by their own names, ADL lists by position."""

from __future__ import annotations

ADL_LISTS = 5  # the first five positions that have a mean
# The LogitDiff ordering that the relevance plots show and the agent reads (the main one, as in the paper).
MAIN_ORDERING = "top_k_occurring"
_ADL_PREFIX = "adl_pos"


def adl_list_id(position: int) -> str:
    return f"{_ADL_PREFIX}{position}"


def list_position(list_id: str) -> int | None:
    """The ADL position a list id stands for, None for LogitDiff orderings."""
    return int(list_id.removeprefix(_ADL_PREFIX)) if list_id.startswith(_ADL_PREFIX) else None
