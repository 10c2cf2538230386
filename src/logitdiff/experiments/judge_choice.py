"""Which judge id a run's relevance results belong to, decided without building the judge.

Mode plotting and `logitdiff status` need the id to find stored grades, but must not load models
or call an API.
"""

from __future__ import annotations

from logitdiff.judge.factory import choose_judge
from logitdiff.judge.offline import OFFLINE_JUDGE_ID


def resolve_judge_id(option: str | None) -> str:
    """The id of the judge `choose_judge` picks (the judge `make_judge` builds)."""
    choice = choose_judge(option)
    return OFFLINE_JUDGE_ID if isinstance(choice, str) else choice.id


def judge_label(judge_id: str) -> str:
    """How plots name the judge; the offline judge is flagged as not being an LLM."""
    if judge_id.startswith("offline"):
        return f"{judge_id} (OFFLINE judge: embedding similarity, not an LLM)"
    return judge_id
