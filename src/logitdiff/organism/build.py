"""The organism recipe as code: narrow documents, generic corpus, one LoRA adapter per variant.

Every random choice derives from one seed: narrow documents use `seed`, the generic parts
`seed + 1` (mixing), `seed + 2` (diffing, long) and `seed + 3` (diffing, short), training `seed`.
Generic sampling is the slow step on a CPU; it writes resumable parts under the user cache, and
finished corpora already in the generic folder are reused as they are (every organism of a model
shares them), so a second organism costs only its narrow documents and training.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from logitdiff.organism.generic_corpus import finalize, generate_part, read_texts, write_jsonl_gz
from logitdiff.organism.narrow_docs import NarrowSpec, generate_narrow_docs
from logitdiff.organism.train_lora import LoraRecipe, save_adapter, train_lora

VARIANTS = ("default", "mix1-0p5", "mix1-1p0", "mix1-1p5", "mix1-2p0")
_MIX = re.compile(r"^mix1-(\d+)p(\d+)$")


@dataclass(frozen=True)
class GenericPart:
    name: str
    texts: int
    new_tokens: int
    seed_offset: int


@dataclass(frozen=True)
class BuildSizes:
    narrow_docs: int = 600
    mixing_docs: int = 384
    mixing_tokens: int = 64
    diffing_long: int = 1024
    diffing_long_tokens: int = 212
    diffing_short: int = 2048
    diffing_short_tokens: int = 40
    gen_batch: int = 32

    def mixing_parts(self) -> list[GenericPart]:
        return [GenericPart("mixing", self.mixing_docs, self.mixing_tokens, 1)]

    def diffing_parts(self) -> list[GenericPart]:
        parts = [GenericPart("diffing_long", self.diffing_long, self.diffing_long_tokens, 2),
                 GenericPart("diffing_short", self.diffing_short, self.diffing_short_tokens, 3)]
        return [p for p in parts if p.texts > 0]


@dataclass(frozen=True)
class BuildPaths:
    adapters: Path  # one folder per variant inside
    data: Path  # narrow.jsonl.gz
    generic: Path  # mixing.jsonl.gz, diffing.jsonl.gz
    work: Path  # resumable generic parts

    @property
    def narrow(self) -> Path:
        return self.data / "narrow.jsonl.gz"

    @property
    def mixing(self) -> Path:
        return self.generic / "mixing.jsonl.gz"

    @property
    def diffing(self) -> Path:
        return self.generic / "diffing.jsonl.gz"


def default_work_dir(cache_dir: Path, model: str, seed: int, base_path: str | None = None) -> Path:
    """Where sampled parts are kept between runs; a local base folder gets its own place."""
    root = cache_dir / "organism-parts" / model / f"seed{seed}"
    if base_path:
        return root / ("local-" + hashlib.sha1(str(Path(base_path).resolve()).encode()).hexdigest()[:10])
    return root


def variant_ratio(variant: str) -> float:
    """Generic documents per narrow document: 'default' -> 0, 'mix1-1p5' -> 1.5."""
    if variant == "default":
        return 0.0
    m = _MIX.match(variant)
    if not m:
        raise ValueError(f"variant {variant!r} is neither 'default' nor of the form mix1-<a>p<b> (e.g. mix1-0p5)")
    return float(f"{m.group(1)}.{m.group(2)}")


def build_narrow(spec: NarrowSpec, paths: BuildPaths, sizes: BuildSizes, seed: int) -> list[str]:
    docs = generate_narrow_docs(spec, sizes.narrow_docs, seed)
    write_jsonl_gz([{"text": d.text, "kind": d.kind} for d in docs], paths.narrow)
    return [d.text for d in docs]


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _sample_parts(model: PreTrainedModel, tok: PreTrainedTokenizerBase, parts: list[GenericPart], paths: BuildPaths, sizes: BuildSizes, seed: int) -> list[Path]:
    files = []
    for part in parts:
        path = paths.work / f"{part.name}-n{part.texts}-t{part.new_tokens}-b{sizes.gen_batch}.jsonl"
        generate_part(model, tok, path, n=part.texts, new_tokens=part.new_tokens, seed=seed + part.seed_offset, batch_size=sizes.gen_batch, desc=part.name)
        files.append(path)
    return files


def existing_generic(paths: BuildPaths) -> tuple[int, int] | None:
    """Text counts of finished mixing and diffing corpora, or None when either is missing."""
    if not (paths.mixing.is_file() and paths.diffing.is_file()):
        return None
    return len(read_texts(paths.mixing)), len(read_texts(paths.diffing))


def build_generic(model: PreTrainedModel, tok: PreTrainedTokenizerBase, paths: BuildPaths, sizes: BuildSizes, seed: int) -> tuple[int, int]:
    """Sample the mixing and diffing corpora; the diffing corpus never repeats a mixing text."""
    n_mix = finalize(_sample_parts(model, tok, sizes.mixing_parts(), paths, sizes, seed), paths.mixing)
    diff_parts = _sample_parts(model, tok, sizes.diffing_parts(), paths, sizes, seed)
    mixing = set(read_texts(paths.mixing))
    finalize(diff_parts, paths.diffing)
    rows = [r for r in _rows(paths.diffing) if r["text"] not in mixing]
    write_jsonl_gz(rows, paths.diffing)
    return n_mix, len(rows)


def load_base(base_dir: str) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)


def build_adapters(
    base_dir: str,
    base_model_id: str,
    tok: PreTrainedTokenizerBase,
    narrow: list[str],
    generic: list[str],
    recipe: LoraRecipe,
    variants: list[str],
    paths: BuildPaths,
) -> dict[str, list[float]]:
    """Train one adapter per variant on a fresh copy of the base; the same narrow steps for all."""
    curves = {}
    for variant in variants:
        variant_recipe = replace(recipe, mix_ratio=variant_ratio(variant))
        model, log = train_lora(load_base(base_dir), tok, narrow, generic, variant_recipe, desc=variant)
        save_adapter(model, paths.adapters / variant, base_model_id, variant_recipe, log)
        curves[variant] = log.losses
    return curves
