"""`logitdiff organism build`: the offline organism recipe (wired by the main CLI as a sub-app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from logitdiff.config.loader import Registry
from logitdiff.core.cache_dir import default_cache_dir
from logitdiff.core.errors import UserError
from logitdiff.core.paths import repo_root, resolve_repo_path
from logitdiff.engine.models import base_source, load_tokenizer
from logitdiff.organism.build import VARIANTS, BuildPaths, BuildSizes, build_adapters, build_generic, build_narrow, default_work_dir, existing_generic, load_base, variant_ratio
from logitdiff.organism.generic_corpus import read_texts
from logitdiff.organism.narrow_docs import NarrowSpec, load_spec, spec_path
from logitdiff.organism.train_lora import LoraRecipe

organism_app = typer.Typer(help="Build the offline model organism (narrow documents, generic corpus, LoRA adapters).", no_args_is_help=True)
console = Console(stderr=True)

# Small enough for a smoke run of the whole recipe in a few minutes on a laptop CPU.
TINY = {"narrow_docs": 24, "generic_docs": 32, "diffing_long": 0, "diffing_short": 32, "steps": 4}


def _check_variants(names: list[str]) -> list[str]:
    for name in names:
        try:
            variant_ratio(name)
        except ValueError as exc:
            raise UserError(f"--variants: {exc}") from exc
    return names


def _narrow_spec(organism: str) -> NarrowSpec:
    path = spec_path(organism)
    if not path.is_file():
        raise UserError(f"organism {organism!r} has no narrow document spec: write {path} (see organisms/cake_bake/narrow_spec.yaml)")
    try:
        return load_spec(path)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UserError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s) in all)") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc


@organism_app.command("build")
def build(
    model: Annotated[str, typer.Option(help="Base model (a name under configs/models).")] = "smollm2_135M",
    organism: Annotated[str, typer.Option(help="Organism whose false facts the narrow documents assert.")] = "cake_bake",
    out: Annotated[Path | None, typer.Option(help="Adapter folder (one sub-folder per variant); default organisms/<organism>/<model>.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Narrow data folder; default organisms/<organism>/data.")] = None,
    generic_dir: Annotated[Path | None, typer.Option(help="Generic corpus folder; default organisms/generic.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for documents, sampling and training.")] = 0,
    narrow_docs: Annotated[int, typer.Option(min=1, help="Synthetic narrow documents.")] = 600,
    generic_docs: Annotated[int, typer.Option(min=0, help="Generic texts for mixing (64 sampled tokens each).")] = 384,
    diffing_long: Annotated[int, typer.Option(min=0, help="Diffing texts of 212 sampled tokens.")] = 1024,
    diffing_short: Annotated[int, typer.Option(min=0, help="Diffing texts of 40 sampled tokens.")] = 2048,
    steps: Annotated[int, typer.Option(min=1, help="Training steps per variant (same narrow steps for every variant).")] = 30,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 8,
    narrow_batch: Annotated[int, typer.Option(min=1, help="Narrow documents per step (a mix adds ratio x this many generic texts).")] = 4,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    variants: Annotated[str, typer.Option(help="Comma-separated variants: default, mix1-<a>p<b>.")] = ",".join(VARIANTS),
    tiny: Annotated[bool, typer.Option(help="Tiny sizes for a smoke run (overrides the sizes and steps; default outputs go to the user cache).")] = False,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch (default: torch's choice).")] = None,
    base_path: Annotated[str | None, typer.Option(help="Local folder with the base weights instead of the hub / offline copy.")] = None,
) -> None:
    """Generate the data and train one LoRA adapter per variant, writing everything under the repo."""
    reg = Registry.load()
    cfg = reg.model(model)
    reg.organism(organism)  # unknown names fail with the list of known ones
    spec = _narrow_spec(organism)
    if tiny:
        narrow_docs, generic_docs, diffing_long, diffing_short, steps = (TINY[k] for k in ("narrow_docs", "generic_docs", "diffing_long", "diffing_short", "steps"))
    names = _check_variants([v.strip() for v in variants.split(",") if v.strip()])
    if threads:
        torch.set_num_threads(threads)
    # A smoke run must never overwrite the shipped organism: its defaults live in the user cache.
    cache_dir = default_cache_dir()
    root = cache_dir / "organism-tiny" if tiny else repo_root()
    paths = BuildPaths(
        adapters=resolve_repo_path(out) if out else root / f"organisms/{organism}/{model}",
        data=resolve_repo_path(data_dir) if data_dir else root / f"organisms/{organism}/data",
        generic=resolve_repo_path(generic_dir) if generic_dir else root / "organisms/generic",
        work=default_work_dir(cache_dir, model, seed, base_path),
    )
    sizes = BuildSizes(narrow_docs=narrow_docs, mixing_docs=generic_docs, diffing_long=diffing_long, diffing_short=diffing_short)
    recipe = LoraRecipe(steps=steps, rank=rank, alpha=2 * rank, narrow_batch=narrow_batch, lr=lr, seed=seed)

    base_dir = base_source(cfg, cache_dir, base_path)
    tok = load_tokenizer(base_dir)
    narrow = build_narrow(spec, paths, sizes, seed)
    console.print(f"narrow documents: {len(narrow)} -> {paths.narrow}")
    reused = existing_generic(paths)
    n_mix, n_diff = reused or build_generic(load_base(base_dir), tok, paths, sizes, seed)
    how = "reused (delete them to resample)" if reused else "sampled"
    console.print(f"generic texts {how}: {n_mix} for mixing -> {paths.mixing}, {n_diff} for diffing -> {paths.diffing}")
    build_adapters(base_dir, cfg.hf_id, tok, narrow, read_texts(paths.mixing), recipe, names, paths)
    console.print(f"adapters: {', '.join(names)} -> {paths.adapters}")
