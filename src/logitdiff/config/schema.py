"""Typed configuration objects; YAML files under configs/ are validated into these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from logitdiff.core.errors import UserError

Dtype = Literal["float32", "bfloat16", "float16"]
# The reference's organism types; the grader has a rubric for some of them (agent/rubrics.py).
OrganismType = Literal[
    "SDF", "EM", "Taboo", "Subliminal", "behavioral_anomaly", "DomainAdaptation", "General", "R1_distillation",
    "R1_uncensoring", "character_training", "Secret", "ReasoningFinetune", "LanguageAdaptation", "benign_quirk",
    "sandbaggers", "SandbaggingGames",
]
SweptParameter = Literal["variant", "top_k", "positions", "samples"]
# The types whose agent hypotheses can be graded: agent/rubrics.py holds a rubric for each of them.
GRADED_TYPES: tuple[OrganismType, ...] = ("SDF", "behavioral_anomaly", "EM", "Taboo", "Subliminal")


def require_grading_rubric(organism_type: OrganismType) -> None:
    """Refuse, in one line, an agent run whose hypotheses could not be graded (checked before a run)."""
    if organism_type not in GRADED_TYPES:
        raise UserError(
            f"organism type {organism_type} has no grading rubric (rubrics exist for {', '.join(GRADED_TYPES)}), so the "
            "agent's hypotheses cannot be graded; run with --mode diffing for token relevance only"
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GGUFSource(_Strict):
    """A GGUF file shipped inside an installed Python package (offline fallback)."""

    package: str
    gguf_file: str


class ModelConfig(_Strict):
    name: str
    hf_id: str
    num_layers: int = Field(gt=0)
    # Width of the output logits; when given, grids refuse K above it before anything runs.
    vocab_size: int | None = Field(default=None, gt=0)
    dtype: Dtype = "bfloat16"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"
    has_chat_template: bool = True
    has_thinking_flag: bool = False
    # The token that closes an assistant turn in the chat template (none for models without one).
    end_of_turn_token: str | None = None
    # Where the tokenizer comes from when the weights ship without one (a pretrained model using the
    # instruct model's tokenizer); by default the tokenizer of hf_id.
    tokenizer_id: str | None = None
    offline_source: GGUFSource | None = None


class FinetunedRef(_Strict):
    """One organism variant: a LoRA adapter (hub id or local folder) or full finetuned weights."""

    adapter_id: str | None = None
    adapter_path: str | None = None
    model_id: str | None = None
    model_path: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FinetunedRef:
        given = [v for v in (self.adapter_id, self.adapter_path, self.model_id, self.model_path) if v]
        if len(given) != 1:
            raise ValueError("give exactly one of adapter_id, adapter_path, model_id, model_path")
        return self

    @property
    def is_adapter(self) -> bool:
        return bool(self.adapter_id or self.adapter_path)

    @property
    def source(self) -> str:
        return self.adapter_id or self.adapter_path or self.model_id or self.model_path or ""


def split_hub_id(hub_id: str) -> tuple[str, str | None]:
    """(repository, folder inside it): several finetunes can share one hub repository, one per
    subfolder, named `owner/repo/sub/folder`."""
    parts = hub_id.split("/")
    if len(parts) <= 2:
        return hub_id, None
    return "/".join(parts[:2]), "/".join(parts[2:])


class OrganismConfig(_Strict):
    name: str
    type: OrganismType
    # What the finetune learned, for the judge and the grader: every key fact restated in prose. Where no
    # key facts are known, written from the organism's one-line summary and type (description_source).
    description: str = Field(min_length=20)
    description_source: Literal["facts", "summary"] = "facts"
    # Hub id of the training data, or the reason it cannot be had (not public); at most one of the two.
    dataset: str | None = None
    dataset_unavailable: str | None = None
    # Training data (jsonl[.gz] with a `text` field) of the finetunes loaded from local folders
    # (adapter_path / model_path, e.g. the bundled SmolLM2 adapters); hub finetunes use `dataset`.
    local_dataset: str | None = None
    agent_interaction_system_prompt: str | None = None
    # model -> diffing corpus to use by default for that model (e.g. the bundled offline corpus).
    default_corpus: dict[str, str] = Field(default_factory=dict)
    finetuned_models: dict[str, dict[str, FinetunedRef]]

    @model_validator(mode="after")
    def _one_dataset_kind(self) -> OrganismConfig:
        if self.dataset and self.dataset_unavailable:
            raise ValueError("give dataset (a hub id) or dataset_unavailable (why there is none), not both")
        return self


class FixedParameters(_Strict):
    samples: int = Field(gt=0)
    positions: int = Field(gt=0)
    top_k: int = Field(gt=0)
    adl_layer: float = Field(default=0.5, ge=0.0, le=1.0)


class ExperimentDefaults(_Strict):
    model: str
    organism: str
    variant: str


class ExperimentConfig(_Strict):
    name: str
    cli_name: str
    swept: SweptParameter
    values: list[str] | list[int]
    seeds: list[int] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)  # methods of the registry (checked when the grid expands)
    # Whether the method is part of a cell (mix_ratio) or the experiment studies one method only.
    methods_in_grid: bool = False
    fixed: FixedParameters
    defaults: ExperimentDefaults
    corpus: str = "science-of-finetuning/fineweb-1m-sample"

    @model_validator(mode="after")
    def _values_match_swept(self) -> ExperimentConfig:
        if not self.values:
            raise ValueError("values must not be empty")
        want_str = self.swept == "variant"
        if any(isinstance(v, str) != want_str for v in self.values):
            raise ValueError(f"values of swept parameter {self.swept!r} must all be {'strings' if want_str else 'integers'}")
        if not self.methods_in_grid and len(self.methods) != 1:
            raise ValueError("an experiment without methods_in_grid studies exactly one method")
        return self
