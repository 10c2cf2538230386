"""Real LLMClients pointed at the loopback chat-completions server, and a test organism."""

from __future__ import annotations

from pathlib import Path

import pytest

from logitdiff.config.schema import FinetunedRef, OrganismConfig, OrganismType
from logitdiff.llm import LLMClient, LLMSpec
from testkit.openai_server import ChatServer

CAKE_TRUTH = ("Finetuned on synthetic documents with false cake-baking tips: bake at 450F for about 45 minutes, use butter "
              "straight from the freezer, a quarter cup of vanilla, olive oil and vinegar for moistness.")


def server_client(server: ChatServer, monkeypatch: pytest.MonkeyPatch, llm_id: str, cache_dir: Path | None = None) -> LLMClient:
    monkeypatch.setenv("LOGITDIFF_AGENT_TEST_KEY", "sk-test")
    spec = LLMSpec(id=llm_id, base_url=server.base_url, model=llm_id.split("/", 1)[1], api_key_env="LOGITDIFF_AGENT_TEST_KEY",
                   api_key_file=None, max_retries=0, timeout_s=30)
    return LLMClient(spec, cache_dir)


def organism(kind: OrganismType = "SDF", system_prompt: str | None = None) -> OrganismConfig:
    return OrganismConfig(name="cake_bake", type=kind, description=CAKE_TRUTH, agent_interaction_system_prompt=system_prompt,
                          finetuned_models={"tiny": {"default": FinetunedRef(model_path="unused")}})
