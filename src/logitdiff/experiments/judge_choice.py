"""Which judge id a run's relevance results belong to, decided without building the judge.

Mode plotting and `logitdiff status` need the id to find stored grades, but must not load models
or call an API.
"""

from __future__ import annotations

from logitdiff.judge.offline import OFFLINE_JUDGE_ID
from logitdiff.llm.client import LLMClient
from logitdiff.llm.spec import DEFAULT_JUDGE_LLM, parse_llm_id


def resolve_judge_id(option: str | None) -> str:
    """The same choice as judge.factory.make_judge: explicit id, else the default LLM if keyed, else offline."""
    spec = parse_llm_id(option if option is not None else DEFAULT_JUDGE_LLM)
    if spec.is_offline:
        return OFFLINE_JUDGE_ID
    if option is None and not LLMClient(spec, None).has_key():
        return OFFLINE_JUDGE_ID
    return spec.id


def judge_label(judge_id: str) -> str:
    """How plots name the judge; the offline judge is flagged as not being an LLM."""
    if judge_id.startswith("offline"):
        return f"{judge_id} (OFFLINE judge: embedding similarity, not an LLM)"
    return judge_id
