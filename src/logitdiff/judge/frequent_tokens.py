"""The most frequent non-generic tokens of an organism's training data (context for the judge, and the
reference set for `trivial_percentage`). Computed once per (organism data, tokenizer) and cached on disk."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from logitdiff.config.schema import OrganismConfig
from logitdiff.engine.hub import hub_reachable
from logitdiff.judge.tokens import is_generic_piece, normalize_token
from logitdiff.paths import resolve_repo_path
from logitdiff.results.atomic import read_json, write_json
from logitdiff.results.store import slug

MIN_COUNT = 10
TOP_N = 100


def _local_texts(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                text = json.loads(line).get("text")
                if isinstance(text, str) and text:
                    yield text


def _hub_texts(dataset: str) -> Iterator[str] | None:
    """Texts of a hub dataset, or None when it cannot be loaded (e.g. offline)."""
    if not hub_reachable():  # a short probe instead of the datasets library's long retry loop
        print(f"notice: the Hugging Face hub is unreachable, no training data {dataset!r}; judging without frequent tokens", file=sys.stderr)
        return None
    try:
        import datasets

        data = datasets.load_dataset(dataset, split="train")
    except Exception as exc:  # noqa: BLE001  (any loading failure means: no frequent tokens this run)
        print(f"notice: cannot load training data {dataset!r} ({type(exc).__name__}); judging without frequent tokens", file=sys.stderr)
        return None
    return (t for t in data["text"] if isinstance(t, str) and t)


def _source(organism: OrganismConfig) -> tuple[str, Iterator[str] | None]:
    if organism.local_dataset:
        path = resolve_repo_path(organism.local_dataset)
        if path.exists():
            return f"file:{path.resolve()}:{path.stat().st_size}", _local_texts(path)
    if organism.dataset:
        return f"hub:{organism.dataset}", None
    return "", None


def count_frequent_tokens(texts: Iterator[str], tokenizer: Any, max_documents: int,
                          min_count: int = MIN_COUNT, top_n: int = TOP_N) -> list[str]:
    """Normalized forms of the top_n pieces with count >= min_count, generic pieces dropped."""
    ids: Counter[int] = Counter()
    for i, text in enumerate(tqdm(texts, desc="frequent training tokens", unit="doc", total=max_documents)):
        if i >= max_documents:
            break
        ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    forms: Counter[str] = Counter()
    for token_id, count in ids.items():
        piece = tokenizer.decode([token_id])
        if not is_generic_piece(piece):
            forms[normalize_token(piece)] += count
    return [form for form, count in forms.most_common() if count >= min_count][:top_n]


def frequent_training_tokens(organism: OrganismConfig, tokenizer: Any, cache_dir: Path,
                             max_documents: int = 20_000) -> list[str]:
    """Cached list for this organism's training data and tokenizer; [] when the organism has no data
    (the judge then sees "(none)")."""
    source, texts = _source(organism)
    if not source:
        return []
    key = hashlib.sha256(f"{source}|{tokenizer.name_or_path}|{max_documents}|{MIN_COUNT}|{TOP_N}".encode()).hexdigest()[:16]
    path = cache_dir / "frequent_tokens" / f"{slug(organism.name)}-{key}.json"
    if path.exists():
        try:
            return [str(t) for t in read_json(path)["tokens"]]
        except (ValueError, KeyError, TypeError):
            pass  # corrupted cache entry (truncated, random bytes, another shape): recount
    if texts is None:
        texts = _hub_texts(organism.dataset or "")
        if texts is None:
            return []
    tokens = count_frequent_tokens(texts, tokenizer, max_documents)
    write_json(path, {"organism": organism.name, "source": source, "tokenizer": str(tokenizer.name_or_path),
                      "max_documents": max_documents, "tokens": tokens})
    return tokens
