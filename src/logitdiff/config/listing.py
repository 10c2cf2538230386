"""What `logitdiff organisms` prints: the configured organisms, their training data and, per base
model, the variants that can be run."""

from __future__ import annotations

from typing import get_args

from logitdiff.config.loader import Registry
from logitdiff.config.schema import FinetunedRef, OrganismConfig, OrganismType
from logitdiff.core.errors import UserError


def _variant(name: str, ref: FinetunedRef) -> str:
    return name if ref.is_adapter else f"{name} [full]"


def _training_data(org: OrganismConfig) -> str:
    if org.dataset_unavailable:
        return f"unavailable, {org.dataset_unavailable}"
    return org.dataset or org.local_dataset or "none"


def organism_listing(reg: Registry, model: str | None = None, organism_type: str | None = None) -> list[str]:
    """One block per organism (name, type, training data, then one line per base model with its
    variants), restricted to a base model and/or an organism type; the last line counts them."""
    if model is not None:
        reg.model(model)  # an unknown name ends here, listing the known ones
    types: tuple[OrganismType, ...] = get_args(OrganismType)
    if organism_type is not None and organism_type not in types:
        raise UserError(f"unknown organism type {organism_type!r}; known types: {', '.join(types)}")
    chosen = [
        org for org in reg.organisms.values()
        if (model is None or model in org.finetuned_models) and (organism_type is None or org.type == organism_type)
    ]
    lines: list[str] = []
    for org in chosen:
        note = "; description from its summary, no key facts known" if org.description_source == "summary" else ""
        lines.append(f"{org.name}  ({org.type}{note}; training data: {_training_data(org)})")
        for name in sorted(org.finetuned_models):
            if model is None or name == model:
                variants = org.finetuned_models[name]
                lines.append(f"  {name}: {', '.join(_variant(v, variants[v]) for v in sorted(variants))}")
    where = " and ".join(part for part in (f"model {model}" if model else "", f"type {organism_type}" if organism_type else "") if part)
    lines.append(f"{len(chosen)} organism(s){f' with {where}' if where else ''}; [full] marks full-weight finetunes, the rest are LoRA adapters")
    return lines
