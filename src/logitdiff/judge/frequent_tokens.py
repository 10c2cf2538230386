"""The most frequent non-generic tokens of the training data of the finetune being diffed (context for
the judge, and the reference set for `trivial_percentage`). Computed once per (data, tokenizer) and
cached on disk.

Whose data: a finetune loaded from a local folder (`adapter_path` / `model_path`, e.g. the bundled
SmolLM2 cake_bake adapters) was trained on the organism's `local_dataset`; a hub finetune (`adapter_id`
/ `model_id`) on the organism's hub `dataset`. When that data cannot be read (hub unreachable, no
dataset, or a dataset that is not public), there are no frequent tokens and no trivial baseline, and the reason is recorded: counting
another finetune's documents would give a number about the wrong data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from logitdiff.config.schema import FinetunedRef, OrganismConfig
from logitdiff.core.atomic import read_json, write_json
from logitdiff.core.names import slug
from logitdiff.core.progress import progress
from logitdiff.core.paths import resolve_repo_path
from logitdiff.engine.hub import hub_reachable
from logitdiff.judge.tokens import is_generic_piece, normalize_token

MIN_COUNT = 10
TOP_N = 100


@dataclass(frozen=True)
class FrequentTokens:
    """`tokens` of the finetune's training data, or `unavailable` saying why there are none."""

    tokens: list[str]
    source: str | None = None  # "file:<path>" or "hub:<dataset id>"
    unavailable: str | None = None


def _usable(text: object) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _local_texts(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                text = json.loads(line).get("text")
                if _usable(text):
                    yield text


def _row_text(row: dict[str, Any]) -> str | None:
    """`text`, or the joined contents of a chat `messages` column (the two layouts of organism datasets)."""
    if _usable(row.get("text")):
        return row["text"]
    messages = row.get("messages")
    if isinstance(messages, list):
        joined = "\n".join(m["content"] for m in messages if isinstance(m, dict) and _usable(m.get("content")))
        return joined or None
    return None


def _hub_texts(dataset: str) -> Iterator[str] | str:
    """Texts of every split of a hub dataset, or the reason they cannot be had."""
    if not hub_reachable():  # a short probe instead of the datasets library's long retry loop
        return f"the Hugging Face hub is unreachable (training data {dataset})"
    try:
        import datasets

        splits = datasets.load_dataset(dataset)
    except Exception as exc:  # noqa: BLE001  (any loading failure means: no frequent tokens this run)
        return f"cannot load training data {dataset} ({type(exc).__name__})"
    return (text for split in splits.values() for row in split if (text := _row_text(row)) is not None)


def training_data_source(organism: OrganismConfig, finetuned: FinetunedRef) -> tuple[str | None, str | None]:
    """(source, reason there is none) for this finetune's training data; see the module docstring."""
    if finetuned.adapter_path or finetuned.model_path:
        if not organism.local_dataset:
            return None, f"organism {organism.name} names no local training data for its local finetunes"
        path = resolve_repo_path(organism.local_dataset)
        if not path.is_file():
            return None, f"training data file {path} does not exist"
        return f"file:{path.resolve()}", None
    if organism.dataset_unavailable:
        return None, f"the training data of organism {organism.name} is unavailable ({organism.dataset_unavailable})"
    if not organism.dataset:
        return None, f"organism {organism.name} has no training dataset"
    return f"hub:{organism.dataset}", None


def count_frequent_tokens(texts: Iterator[str], tokenizer: Any, max_documents: int,
                          min_count: int = MIN_COUNT, top_n: int = TOP_N) -> list[str]:
    """Normalized forms of the top_n pieces with count >= min_count, generic pieces dropped."""
    ids: Counter[int] = Counter()
    with progress(max_documents, "frequent training tokens", "doc") as bar:
        for i, text in enumerate(texts):
            if i >= max_documents:
                break
            ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
            bar.update(1)
    forms: Counter[str] = Counter()
    for token_id, count in ids.items():
        piece = tokenizer.decode([token_id])
        if not is_generic_piece(piece):
            forms[normalize_token(piece)] += count
    return [form for form, count in forms.most_common() if count >= min_count][:top_n]


def frequent_training_tokens(organism: OrganismConfig, finetuned: FinetunedRef, tokenizer: Any, cache_dir: Path,
                             max_documents: int = 20_000) -> FrequentTokens:
    """Cached list for this finetune's training data and tokenizer. Without data: no tokens, a reason,
    and a notice on stderr (callers ask once per finetune and run)."""
    source, reason = training_data_source(organism, finetuned)
    if source is None:
        return _unavailable(reason or "no training data")
    stamp = source
    if source.startswith("file:"):
        stamp += f":{Path(source.removeprefix('file:')).stat().st_size}"
    key = hashlib.sha256(f"{stamp}|{tokenizer.name_or_path}|{max_documents}|{MIN_COUNT}|{TOP_N}".encode()).hexdigest()[:16]
    path = cache_dir / "frequent_tokens" / f"{slug(organism.name)}-{key}.json"
    if path.exists():
        try:
            return FrequentTokens(list(read_json(path)["tokens"]), source)
        except (ValueError, KeyError, TypeError):
            pass  # corrupted cache entry (truncated, random bytes, another shape): recount
    if source.startswith("file:"):
        texts: Iterator[str] | str = _local_texts(Path(source.removeprefix("file:")))
    else:
        texts = _hub_texts(source.removeprefix("hub:"))
    if isinstance(texts, str):
        return _unavailable(texts)  # not cached: a later run that reaches the data counts it
    tokens = count_frequent_tokens(texts, tokenizer, max_documents)
    write_json(path, {"organism": organism.name, "source": source, "tokenizer": str(tokenizer.name_or_path),
                      "max_documents": max_documents, "tokens": tokens})
    return FrequentTokens(tokens, source)


def _unavailable(reason: str) -> FrequentTokens:
    print(f"notice: no frequent training tokens: {reason}; the judge sees none and trivial_percentage is null", file=sys.stderr)
    return FrequentTokens([], None, reason)
