"""Before loading anything: are the hub models and datasets this run needs available?

Each hub id is fine when it is in the local HF cache; otherwise the hub must answer a short probe.
Without this check, transformers retries an unreachable hub for minutes and ends in a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from logitdiff.config.loader import Registry
from logitdiff.config.schema import FinetunedRef, ModelConfig, split_hub_id
from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import looks_local
from logitdiff.engine.hub import hub_reachable, in_hf_cache, local_folder
from logitdiff.registry import method_result
from logitdiff.results.store import ResultsStore

RepoType = Literal["model", "dataset"]


@dataclass
class HubNeeds:
    """Hub ids a run will read, with their repo type (insertion-ordered, no duplicates)."""

    ids: dict[str, RepoType] = field(default_factory=dict)

    def add_model(self, cfg: ModelConfig) -> None:
        # A model with an offline source (the bundled GGUF) loads without the hub.
        if cfg.offline_source is None and local_folder(cfg.hf_id) is None:
            self.ids.setdefault(cfg.hf_id, "model")
        if cfg.tokenizer_id and local_folder(cfg.tokenizer_id) is None:
            self.ids.setdefault(cfg.tokenizer_id, "model")

    def add_finetuned(self, ref: FinetunedRef) -> None:
        for hub_id in (ref.adapter_id, ref.model_id):
            if hub_id and local_folder(hub_id) is None:
                self.ids.setdefault(split_hub_id(hub_id)[0], "model")

    def add_corpus(self, corpus: str) -> None:
        if not looks_local(corpus):
            self.ids.setdefault(corpus, "dataset")


def hub_needs(reg: Registry, store: ResultsStore, cells: list[Cell], judge_id: str, *, overwrite: bool, with_agent: bool) -> HubNeeds:
    """What the unfinished work among `cells` will read from the hub. Decided from the stored files
    alone, before torch and transformers are even imported."""
    needs = HubNeeds()
    for c in cells:
        compute = overwrite or not method_result(store, c).is_file()
        if compute or with_agent or not store.relevance(c, judge_id).is_file():
            needs.add_model(reg.model(c.model))  # grading alone still loads the tokenizer
        if compute or with_agent:
            needs.add_finetuned(reg.finetuned(c.organism, c.model, c.variant))
        if compute:
            needs.add_corpus(c.corpus)
    return needs


def check_hub_access(needs: HubNeeds) -> None:
    """Raise a one-line UserError naming what is neither cached nor downloadable."""
    missing = [hub_id for hub_id, kind in needs.ids.items() if not in_hf_cache(hub_id, kind)]
    if not missing or hub_reachable():
        return
    models = [m for m in missing if needs.ids[m] == "model"]
    datasets = [d for d in missing if needs.ids[d] == "dataset"]
    what = "; ".join(
        part for part in (
            f"models {', '.join(models)}" if models else "",
            f"datasets {', '.join(datasets)}" if datasets else "",
        ) if part
    )
    raise UserError(
        f"the Hugging Face hub is unreachable and the local HF cache lacks {what}. Ways out: point HF_HOME at a "
        "cache that holds them (download on a connected machine); or set hf_id / adapter_id / model_id in the "
        "configs to local folders (adapter_path / model_path work too) and --corpus to a local file; "
        "or use --model smollm2_135M (bundled offline organism)"
    )
