"""Read and validate the YAML files under configs/; every failure becomes a one-line UserError."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from logitdiff.config.schema import ExperimentConfig, FinetunedRef, ModelConfig, OrganismConfig
from logitdiff.core.errors import UserError
from logitdiff.core.paths import configs_dir

T = TypeVar("T", bound=BaseModel)


def _load_file(path: Path, schema: type[T]) -> T:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__}): fix the file") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    if "description_file" in raw:
        raw["description"] = _with_shared_text(path, raw.get("description"), raw.pop("description_file"))
    try:
        obj = schema.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        allowed = ""
        if err.get("ctx") and "expected" in err["ctx"]:
            allowed = f" (allowed: {err['ctx']['expected']})"
        raise UserError(f"{path}: field '{field}': {err['msg']}{allowed}") from exc
    if obj.name != path.stem:  # type: ignore[attr-defined]
        raise UserError(f"{path}: field 'name' is {obj.name!r} but must equal the file name {path.stem!r}")  # type: ignore[attr-defined]
    return obj


def _with_shared_text(path: Path, own: object, shared: object) -> str:
    """An organism's description followed by a text it shares with other organisms (a file next to
    the configs), so that a long list of facts is written once."""
    if not isinstance(shared, str):
        raise UserError(f"{path}: field 'description_file': expected a file name")
    text_path = path.parent / shared
    if not text_path.is_file():
        raise UserError(f"{path}: field 'description_file': {text_path} does not exist")
    parts = [str(own).strip()] if own else []
    return "\n\n".join([*parts, text_path.read_text().strip()]) + "\n"


def _load_dir(folder: Path, schema: type[T]) -> dict[str, T]:
    if not folder.is_dir():
        raise UserError(f"config folder {folder} not found: set LOGITDIFF_CONFIGS or run from a checkout")
    return {p.stem: _load_file(p, schema) for p in sorted(folder.glob("*.yaml"))}


def _pick(kind: str, name: str, known: dict[str, T]) -> T:
    if name not in known:
        hint = " (logitdiff organisms lists them with their variants)" if kind in ("model", "organism") else ""
        raise UserError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known))}{hint}")
    return known[name]


@dataclass(frozen=True)
class Registry:
    """All shipped configs, validated."""

    models: dict[str, ModelConfig]
    organisms: dict[str, OrganismConfig]
    experiments: dict[str, ExperimentConfig]

    @classmethod
    def load(cls, root: Path | None = None) -> Registry:
        root = root or configs_dir()
        reg = cls(
            models=_load_dir(root / "models", ModelConfig),
            organisms=_load_dir(root / "organisms", OrganismConfig),
            experiments=_load_dir(root / "experiments", ExperimentConfig),
        )
        reg._check_cross_references(root)
        return reg

    def _check_cross_references(self, root: Path) -> None:
        for org in self.organisms.values():
            unknown = sorted(set(org.finetuned_models) - set(self.models))
            if unknown:
                raise UserError(
                    f"{root / 'organisms' / f'{org.name}.yaml'}: field 'finetuned_models': unknown model {unknown[0]!r}; "
                    f"add configs/models/{unknown[0]}.yaml or fix the name"
                )
        for exp in self.experiments.values():
            path = root / "experiments" / f"{exp.name}.yaml"
            d = exp.defaults
            if d.model not in self.models:
                raise UserError(f"{path}: field 'defaults.model': unknown model {d.model!r} (allowed: {', '.join(sorted(self.models))})")
            if d.organism not in self.organisms:
                raise UserError(f"{path}: field 'defaults.organism': unknown organism {d.organism!r} (allowed: {', '.join(sorted(self.organisms))})")

    def model(self, name: str) -> ModelConfig:
        return _pick("model", name, self.models)

    def organism(self, name: str) -> OrganismConfig:
        return _pick("organism", name, self.organisms)

    def experiment(self, name: str) -> ExperimentConfig:
        by_cli = {e.cli_name: e for e in self.experiments.values()}
        if name in by_cli:
            return by_cli[name]
        return _pick("experiment", name, self.experiments)

    def finetuned(self, organism: str, model: str, variant: str) -> FinetunedRef:
        org = self.organism(organism)
        if model not in org.finetuned_models:
            raise UserError(
                f"organism {organism!r} has no finetuned models for {model!r}; "
                f"models with this organism: {', '.join(sorted(org.finetuned_models))}"
            )
        variants = org.finetuned_models[model]
        if variant not in variants:
            raise UserError(
                f"organism {organism!r} has no variant {variant!r} for model {model!r}; "
                f"known variants: {', '.join(sorted(variants))}"
            )
        return variants[variant]

    def same_weights(self, organism: str, model: str, variant: str) -> list[str]:
        """Other variants of (organism, model) that load the very same weights as `variant`.

        A shared id is a copy error in a config (the reference's fda_approval gemma3_1B mix1-1p0 is
        mix1-0p9's adapter): results filed under one name would come from the other model.
        """
        source = self.finetuned(organism, model, variant).source
        variants = self.organism(organism).finetuned_models[model]
        return sorted(name for name, ref in variants.items() if name != variant and ref.source == source)
