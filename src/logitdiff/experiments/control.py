"""Which organism's description is the negative control for an organism's token lists."""

from __future__ import annotations

from collections.abc import Sequence

from logitdiff.config.loader import Registry
from logitdiff.config.schema import FinetunedRef


def control_organism(reg: Registry, organism: str, model: str, run_organisms: Sequence[str]) -> str | None:
    """The next other organism of the same run, cyclically (so the two organisms of a two-organism run
    control each other); in a single-organism run, the first configured organism by name that has a
    finetune of `model`, else the first other configured organism; None when no other is configured."""
    run = list(dict.fromkeys(run_organisms))
    if organism in run and len(run) > 1:
        return run[(run.index(organism) + 1) % len(run)]
    others = [name for name in sorted(reg.organisms) if name != organism]
    same_model = [name for name in others if model in reg.organisms[name].finetuned_models]
    return (same_model or others or [None])[0]


def control_finetune(reg: Registry, organism: str, model: str) -> tuple[str, FinetunedRef] | None:
    """The control organism's finetune of `model` whose training data gives the judge its frequent
    tokens: 'default' if there is one, else the first variant; None without a finetune of `model`."""
    variants = reg.organisms[organism].finetuned_models.get(model, {})
    if not variants:
        return None
    name = "default" if "default" in variants else next(iter(variants))
    return name, variants[name]
