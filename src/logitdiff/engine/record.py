"""The run record written with every engine pass: enough to reproduce and audit it."""

from __future__ import annotations

import importlib.metadata

from pydantic import BaseModel


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("logitdiff", "torch", "transformers", "peft", "datasets", "tokenizers"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class RequestRecord(BaseModel):
    method: str
    samples: int
    positions: int
    top_k: int | None = None
    relative_layer: float | None = None
    layer: int | None = None


class PassRecord(BaseModel):
    started_at: str
    # Hub id, configured folder, or gguf:<package>/<file> for the offline copy. Records written before
    # base_model existed may hold that copy's absolute path in this user's cache instead.
    base_id: str
    base_model: str | None = None  # the configs/models name; None in records written before it was kept
    base_revision: str | None
    finetuned_id: str
    finetuned_revision: str | None
    corpus: str
    seed: int
    drop_bos: bool
    # First position counted (LogitDiff) and averaged (ADL): 1 when --drop-bos left a BOS position out;
    # 0 otherwise, also with --drop-bos on a tokenizer that adds no BOS (nothing to leave out).
    first_counted_position: int = 0
    device: str
    dtype: str
    batch_size: int | None  # None: chosen per run length from the vocabulary size
    shared_head: bool  # d computed as W·(h_ft − h_base) (LoRA pair, head not adapted)
    requests: list[RequestRecord]
    rows_by_positions: dict[int, list[int]]  # T -> corpus rows used, in order (smaller S use a prefix)
    texts_read: int
    texts_empty: int
    texts_too_short: int
    texts_run: int
    tokens_run: int
    timings_s: dict[str, float]  # of the whole pass (shared by every variant in it)
    versions: dict[str, str]
    base_shared_with: list[str] = []  # finetuned ids of all variants whose pass shared the base forward
