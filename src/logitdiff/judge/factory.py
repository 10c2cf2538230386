"""Choosing the judge from the --judge option."""

from __future__ import annotations

import sys
from pathlib import Path

from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.offline import OfflineJudge
from logitdiff.judge.relevance import Judge
from logitdiff.llm.client import LLMClient
from logitdiff.llm.spec import DEFAULT_JUDGE_LLM, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, parse_llm_id


def _offline(reason: str) -> OfflineJudge:
    judge = OfflineJudge()
    print(f"notice: {reason}; token relevance is graded by the offline judge {judge.id} "
          "(embedding similarity, not an LLM) and every result is labelled with that id", file=sys.stderr)
    return judge


def make_judge(judge_option: str | None, cache_dir: Path | None, base_url: str | None = None, *,
               timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES) -> Judge:
    """'offline', an LLM id ('openrouter/openai/gpt-5-mini', 'vllm/<model>@<url>'), or None: the default
    LLM judge when its API key is configured, else the offline judge."""
    if judge_option is None:
        client = LLMClient(parse_llm_id(DEFAULT_JUDGE_LLM, base_url).with_limits(timeout_s, retries), cache_dir, role="judge")
        if client.has_key():
            return LLMJudge(client)
        return _offline(f"no API key for {DEFAULT_JUDGE_LLM} ({client.spec.api_key_env} / {client.spec.api_key_file})")
    spec = parse_llm_id(judge_option, base_url)
    if spec.is_offline:
        return _offline("--judge offline")
    return LLMJudge(LLMClient(spec.with_limits(timeout_s, retries), cache_dir, role="judge"))
