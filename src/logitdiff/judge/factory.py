"""Choosing the judge from the --judge option."""

from __future__ import annotations

import sys
from pathlib import Path

from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.offline import OfflineJudge
from logitdiff.judge.relevance import Judge
from logitdiff.llm.client import LLMClient
from logitdiff.llm.spec import DEFAULT_JUDGE_LLM, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, LLMSpec, parse_llm_id


def _offline(reason: str) -> OfflineJudge:
    judge = OfflineJudge()
    print(f"notice: {reason}; token relevance is graded by the offline judge {judge.id} "
          "(embedding similarity, not an LLM) and every result is labelled with that id", file=sys.stderr)
    return judge


def choose_judge(judge_option: str | None, base_url: str | None = None) -> LLMSpec | str:
    """The one decision of which judge grades: the LLM to ask, or (a string) why the offline judge grades
    instead. judge_option: 'offline', an LLM id ('openrouter/openai/gpt-5-mini', 'vllm/<model>@<url>'),
    or None: the default LLM judge when its API key is configured, else the offline judge. Builds nothing,
    so a run that only reads stored grades can name their judge."""
    if judge_option is None:
        spec = parse_llm_id(DEFAULT_JUDGE_LLM, base_url)
        if LLMClient(spec, None).has_key():
            return spec
        return f"no API key for {DEFAULT_JUDGE_LLM} ({spec.api_key_env} / {spec.api_key_file})"
    spec = parse_llm_id(judge_option, base_url)
    return "--judge offline" if spec.is_offline else spec


def make_judge(judge_option: str | None, cache_dir: Path | None, base_url: str | None = None, *,
               timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES) -> Judge:
    """The judge `choose_judge` picks, built."""
    choice = choose_judge(judge_option, base_url)
    if isinstance(choice, str):
        return _offline(choice)
    return LLMJudge(LLMClient(choice.with_limits(timeout_s, retries), cache_dir, role="judge"))
