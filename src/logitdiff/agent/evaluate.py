"""Public entry point: run the agent (a method's view, or the blackbox) several times and grade each run."""

from __future__ import annotations

import asyncio


from logitdiff.agent.grader import grade_description
from logitdiff.agent.loop import AgentCaps, run_agent
from logitdiff.agent.prompts import opening_message, system_prompt
from logitdiff.agent.records import AgentRunRecord
from logitdiff.agent.tools import AskModel, GenerationSettings, HypothesisTracker, InteractionBudget, PairGenerator
from logitdiff.agent.views import AgentView
from logitdiff.config.schema import ModelConfig, OrganismConfig
from logitdiff.core.progress import progress
from logitdiff.engine.models import ModelPair
from logitdiff.llm import LLMClient

# Each (seed, run) samples the models from its own seed range; ask_model adds the interactions spent.
_MAX_RUNS = 100
_MAX_BUDGET = 10_000


def _sampling_seed(seed: int, run: int) -> int:
    return (seed * _MAX_RUNS + run) * _MAX_BUDGET


async def evaluate_agent(
    *,
    pair: ModelPair,
    model_cfg: ModelConfig,
    organism: OrganismConfig,
    view: AgentView,
    agent_llm: LLMClient,
    grader_llm: LLMClient,
    seed: int,
    sample: str,
    budget: int = 5,
    runs: int = 2,
    grader_runs: int = 2,
    max_new_tokens: int = 1024,
    temperature: float = 0.8,
    caps: AgentCaps | None = None,
) -> list[AgentRunRecord]:
    """`view` is the method's (or `blackbox_view()`). Agent runs go concurrently; their model generations
    are serialized. One record per run, in run order; failures are recorded, not raised. `sample` names
    the cell (or blackbox) the runs belong to: run r of it, and each of its grader runs, is its own LLM
    sample, never answered from another cell's or seed's cache."""
    if not (0 <= budget < _MAX_BUDGET and 1 <= runs <= _MAX_RUNS and grader_runs >= 1):
        raise ValueError(f"need 0 <= budget < {_MAX_BUDGET}, 1 <= runs <= {_MAX_RUNS}, grader_runs >= 1")
    generator = PairGenerator(pair, model_cfg, organism.agent_interaction_system_prompt, GenerationSettings(max_new_tokens, temperature))
    label = "blackbox" if view.blackbox else "method"
    with progress(runs, f"agent runs ({label}, {organism.name})", "run", transient=True) as bar:

        async def one(run: int) -> AgentRunRecord:
            record = await _agent_run(
                run=run, generator=generator, organism=organism, view=view, agent_llm=agent_llm,
                grader_llm=grader_llm, seed=seed, budget=budget, grader_runs=grader_runs, caps=caps or AgentCaps(),
                tag=f"{sample}|run{run}",
            )
            bar.update(1)
            return record

        return list(await asyncio.gather(*(one(r) for r in range(runs))))


async def _agent_run(
    *, run: int, generator: PairGenerator, organism: OrganismConfig, view: AgentView, agent_llm: LLMClient,
    grader_llm: LLMClient, seed: int, budget: int, grader_runs: int, caps: AgentCaps, tag: str,
) -> AgentRunRecord:
    interactions = InteractionBudget(budget)
    tracker = HypothesisTracker()
    asker = AskModel(generator=generator, budget=interactions, seed=_sampling_seed(seed, run), tracker=tracker)
    system = system_prompt(budget, caps.max_llm_calls, view.context, view.tool_docs, view.conduct)
    outcome = await run_agent(
        llm=agent_llm, system=system, opening=opening_message(view.overview, budget),
        tools={t.name: t for t in (asker, tracker, *view.tools)}, caps=caps, cache_tag=tag, interactions=interactions,
    )
    outcome.stats.model_interactions = interactions.used
    grades = []
    if outcome.description is not None:
        grades = list(await asyncio.gather(*(
            grade_description(grader_llm, organism, outcome.description, grader_run=g, cache_tag=f"{tag}|grader{g}")
            for g in range(grader_runs)
        )))
    return AgentRunRecord(
        run=run, seed=seed, agent_id=agent_llm.spec.id, grader_id=grader_llm.spec.id, budget=budget, blackbox=view.blackbox,
        transcript=outcome.transcript, description=outcome.description, final=outcome.final, stats=outcome.stats, grades=grades,
        failed=outcome.failed,
    )
