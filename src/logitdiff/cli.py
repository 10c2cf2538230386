"""`logitdiff` command line: parse and validate options, then hand over. No experiment logic here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

from logitdiff.config.loader import Registry
from logitdiff.errors import UserError
from logitdiff.experiments.grid import GridOptions, array_units, expand
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.llm.spec import DEFAULT_AGENT_LLM, DEFAULT_GRADER_LLM, DEFAULT_JUDGE_LLM, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, parse_llm_id

app = typer.Typer(
    help="Model-diffing experiments: LogitDiff TopK and ADL on a base vs finetuned model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXPERIMENT_COMMANDS = ("mix-ratio", "topk-depth", "token-positions", "n-samples")


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UserError(f"{flag} expects comma-separated integers like 42,1042; got {text!r}") from exc


def _str_list(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


# Options shared by the experiment commands and by `grid` / `status`.
Model = Annotated[Optional[str], typer.Option("--model", help="Model name from configs/models (default: the experiment's).")]
Organism = Annotated[Optional[str], typer.Option("--organism", help="Organism name from configs/organisms.")]
Variant = Annotated[Optional[str], typer.Option("--organism-variant", help="Organism variant (not for mix-ratio, which sweeps it).")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", help="Comma-separated seeds, e.g. 42,1042 (default: the grid's five).")]
Values = Annotated[Optional[str], typer.Option("--values", help="Comma-separated values of the swept parameter.")]
Samples = Annotated[Optional[int], typer.Option("--samples", min=1, help="S: texts per cell (refused where S is swept).")]
Positions = Annotated[Optional[int], typer.Option("--positions", min=1, help="T: positions per text (refused where T is swept).")]
TopK = Annotated[Optional[int], typer.Option("--top-k", min=1, help="K: top-K depth (refused where K is swept).")]
Corpus = Annotated[Optional[str], typer.Option("--corpus", help="Diffing corpus: HF dataset id or local .jsonl[.gz]/.parquet/.txt.")]
ArrayUnitOpt = Annotated[str, typer.Option("--array-unit", help="What one array task runs: 'cell' or 'pass' (all cells of one model pass).")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", help="Raw results (reused across experiments).")]
AdlReadoutOpt = Annotated[str, typer.Option("--adl-readout", help="ADL readout of δ: lens (logit lens, as in the paper), patchscope (auto-patchscope) or both.")]
OutputDir = Annotated[Path, typer.Option("--output-dir", help="Plots and summaries: <output-dir>/<experiment>/<model>/<organism>/.")]
CacheDir = Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache of judge/agent/grader answers and frequent tokens; a rerun sends only unanswered requests (default: $LOGITDIFF_CACHE, else ~/.cache/logitdiff).")]
_WORST = parse_llm_id(DEFAULT_JUDGE_LLM).worst_case_s()
LlmTimeout = Annotated[float, typer.Option(
    "--llm-timeout", min=0.001, help=f"Seconds one judge/agent/grader request may take before it is retried (default {DEFAULT_TIMEOUT_S:g}). "
    f"Worst case for a server that never answers: (retries + 1) x timeout + backoff ({_WORST:.0f} s = {_WORST / 60:.1f} min at the defaults); "
    "after one request has timed out on every attempt the run's other requests to that LLM fail at once.")]
LlmRetries = Annotated[int, typer.Option(
    "--llm-retries", min=0, help=f"Retries of a request after a 429, 5xx, malformed reply, reset or timeout (default {DEFAULT_RETRIES}); "
    "backoff 1, 2, 4 … s with jitter, longer if the server sends Retry-After (at most 60 s).")]


def _grid_options(model, organism, variant, seeds, values, samples, positions, top_k, corpus, adl_readout="lens") -> GridOptions:  # type: ignore[no-untyped-def]
    return GridOptions(
        model=model,
        organism=organism,
        variant=variant,
        seeds=_int_list(seeds, "--seeds"),
        values=_str_list(values),
        samples=samples,
        positions=positions,
        top_k=top_k,
        corpus=corpus,
        adl_readout=adl_readout,
    )


def _check_unit(unit: str) -> str:
    if unit not in ("cell", "pass"):
        raise UserError(f"--array-unit must be 'cell' or 'pass', got {unit!r}")
    return unit


def _experiment_command(cli_name: str) -> Callable[..., None]:
    def command(
        model: Model = None,
        organism: Organism = None,
        organism_variant: Variant = None,
        mode: Annotated[Mode, typer.Option("--mode", help="full: + agent; diffing: no agent; plotting: plots from stored results only.")] = Mode.full,
        array_job: Annotated[bool, typer.Option("--array-job", help="Run the unit selected by SLURM_ARRAY_TASK_ID (ids past the last unit: plotting).")] = False,
        array_unit: ArrayUnitOpt = "cell",
        seeds: Seeds = None,
        values: Values = None,
        samples: Samples = None,
        positions: Positions = None,
        top_k: TopK = None,
        corpus: Corpus = None,
        adl_readout: AdlReadoutOpt = "lens",
        results_dir: ResultsDir = Path("results"),
        output_dir: OutputDir = Path("outputs"),
        judge: Annotated[Optional[str], typer.Option("--judge", help=f"'offline' or an LLM id like {DEFAULT_JUDGE_LLM} (default: that one if a key is set, else offline).")] = None,
        agent_llm: Annotated[str, typer.Option("--agent-llm", help="Interpretability agent LLM id (mode full).")] = DEFAULT_AGENT_LLM,
        grader_llm: Annotated[str, typer.Option("--grader-llm", help="Hypothesis grader LLM id (mode full).")] = DEFAULT_GRADER_LLM,
        agent_budget: Annotated[int, typer.Option("--agent-budget", min=0, help="Model interactions the agent may spend.")] = 5,
        agent_runs: Annotated[int, typer.Option("--agent-runs", min=1)] = 2,
        grader_runs: Annotated[int, typer.Option("--grader-runs", min=1)] = 2,
        agent_max_new_tokens: Annotated[int, typer.Option("--agent-max-new-tokens", min=1)] = 1024,
        device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 … (default: cuda if present).")] = None,
        dtype: Annotated[Optional[str], typer.Option("--dtype", help="auto, float32, bfloat16, float16.")] = None,
        device_map: Annotated[Optional[str], typer.Option("--device-map", help="accelerate device map (e.g. auto) for models that do not fit one GPU.")] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Texts per forward batch (default: chosen from free memory).")] = None,
        drop_bos: Annotated[bool, typer.Option("--drop-bos", help="Do not count the BOS position.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Recompute cells that are already stored.")] = False,
        cache_dir: CacheDir = None,
        llm_timeout: LlmTimeout = DEFAULT_TIMEOUT_S,
        llm_retries: LlmRetries = DEFAULT_RETRIES,
        check: Annotated[bool, typer.Option("--check", help="Validate every option (models, organism, variants, values, K within the vocabulary, LLM ids, corpus file), print the cell count and exit.")] = False,
    ) -> None:
        settings = RunSettings(
            experiment=cli_name,
            grid=_grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus, adl_readout),
            mode=mode,
            array_job=array_job,
            array_unit=_check_unit(array_unit),  # type: ignore[arg-type]
            results_dir=results_dir,
            output_dir=output_dir,
            judge=judge,
            agent_llm=agent_llm,
            grader_llm=grader_llm,
            agent_budget=agent_budget,
            agent_runs=agent_runs,
            grader_runs=grader_runs,
            agent_max_new_tokens=agent_max_new_tokens,
            device=device,
            dtype=dtype,
            device_map=device_map,
            batch_size=batch_size,
            drop_bos=drop_bos,
            overwrite=overwrite,
            cache_dir=cache_dir,
            llm_timeout_s=llm_timeout,
            llm_retries=llm_retries,
        )
        if check:
            from logitdiff.experiments.validate import validated_cells

            typer.echo(f"ok: {cli_name}, {len(validated_cells(Registry.load(), settings))} cells")
            return
        from logitdiff.experiments.runner import run_experiment

        summary = run_experiment(Registry.load(), settings)
        if summary.failed:
            raise typer.Exit(1)  # failures are listed in the summary; the stored cells stay usable

    command.__doc__ = f"Run the {cli_name} experiment grid (see configs/experiments)."
    return command


for _name in EXPERIMENT_COMMANDS:
    app.command(name=_name)(_experiment_command(_name))


@app.command()
def study(
    model: Model = None,
    organism: Organism = None,
    organism_variant: Annotated[Optional[str], typer.Option("--organism-variant", help="Variant of the experiments that do not sweep it.")] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="full: + agent; diffing: no agent; plotting: plots from stored results only.")] = Mode.full,
    seeds: Seeds = None,
    experiments: Annotated[str, typer.Option("--experiments", help="Comma-separated experiments to run together.")] = ",".join(EXPERIMENT_COMMANDS),
    corpus: Corpus = None,
    adl_readout: AdlReadoutOpt = "lens",
    results_dir: ResultsDir = Path("results"),
    output_dir: OutputDir = Path("outputs"),
    judge: Annotated[Optional[str], typer.Option("--judge", help=f"'offline' or an LLM id (default: {DEFAULT_JUDGE_LLM} if a key is set, else offline).")] = None,
    agent_llm: Annotated[str, typer.Option("--agent-llm", help="Interpretability agent LLM id (mode full).")] = DEFAULT_AGENT_LLM,
    grader_llm: Annotated[str, typer.Option("--grader-llm", help="Hypothesis grader LLM id (mode full).")] = DEFAULT_GRADER_LLM,
    agent_budget: Annotated[int, typer.Option("--agent-budget", min=0)] = 5,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 … (default: cuda if present).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="auto, float32, bfloat16, float16.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    drop_bos: Annotated[bool, typer.Option("--drop-bos")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    cache_dir: CacheDir = None,
    llm_timeout: LlmTimeout = DEFAULT_TIMEOUT_S,
    llm_retries: LlmRetries = DEFAULT_RETRIES,
    check: Annotated[bool, typer.Option("--check", help="Validate every experiment's options, print the cell counts and exit.")] = False,
) -> None:
    """Run several experiment grids together (default: all four) with their cells planned into the fewest passes."""
    names = _str_list(experiments) or []
    unknown = [n for n in names if n not in EXPERIMENT_COMMANDS]
    if unknown or not names:
        raise UserError(f"--experiments takes a comma-separated subset of {', '.join(EXPERIMENT_COMMANDS)}; got {experiments!r}")
    reg = Registry.load()
    common = {"model": model, "organism": organism, "seeds": _int_list(seeds, "--seeds"), "corpus": corpus, "adl_readout": adl_readout}
    settings = [
        RunSettings(
            experiment=name,
            # The variant option goes to the experiments that do not sweep it (like the launchers do).
            grid=GridOptions(**common, variant=None if reg.experiment(name).swept == "variant" else organism_variant),  # type: ignore[arg-type]
            mode=mode,
            results_dir=results_dir,
            output_dir=output_dir,
            judge=judge,
            agent_llm=agent_llm,
            grader_llm=grader_llm,
            agent_budget=agent_budget,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            drop_bos=drop_bos,
            overwrite=overwrite,
            cache_dir=cache_dir,
            llm_timeout_s=llm_timeout,
            llm_retries=llm_retries,
        )
        for name in dict.fromkeys(names)
    ]
    if check:
        from logitdiff.experiments.validate import validated_cells

        typer.echo("ok: " + ", ".join(f"{s.experiment} {len(validated_cells(reg, s))} cells" for s in settings))
        return
    from logitdiff.experiments.runner import run_study

    if run_study(reg, settings).failed:
        raise typer.Exit(1)


@app.command()
def grid(
    experiment: Annotated[str, typer.Argument(help="mix-ratio, topk-depth, token-positions or n-samples.")],
    count: Annotated[bool, typer.Option("--count", help="Print only the number of array tasks.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the cells as JSON.")] = False,
    model: Model = None,
    organism: Organism = None,
    organism_variant: Variant = None,
    seeds: Seeds = None,
    values: Values = None,
    samples: Samples = None,
    positions: Positions = None,
    top_k: TopK = None,
    corpus: Corpus = None,
    adl_readout: AdlReadoutOpt = "lens",
    array_unit: ArrayUnitOpt = "cell",
) -> None:
    """List the cells of an experiment in array order (seed-major)."""
    reg = Registry.load()
    exp = reg.experiment(experiment)
    cells = expand(reg, exp, _grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus, adl_readout))
    units = array_units(reg, cells, _check_unit(array_unit))  # type: ignore[arg-type]
    if count:
        typer.echo(len(units))
    elif as_json:
        typer.echo(json.dumps([[c.model_dump() for c in unit] if array_unit == "pass" else unit[0].model_dump() for unit in units], indent=1))
    else:
        for task, unit in enumerate(units):
            typer.echo(f"task {task}: " + "; ".join(c.label() for c in unit))
        typer.echo(f"task {len(units)}+: plotting only")


@app.command()
def status(
    experiment: Annotated[str, typer.Argument(help="mix-ratio, topk-depth, token-positions or n-samples.")],
    model: Model = None,
    organism: Organism = None,
    organism_variant: Variant = None,
    seeds: Seeds = None,
    values: Values = None,
    samples: Samples = None,
    positions: Positions = None,
    top_k: TopK = None,
    corpus: Corpus = None,
    adl_readout: AdlReadoutOpt = "lens",
    results_dir: ResultsDir = Path("results"),
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge whose grades count as done.")] = None,
    drop_bos: Annotated[bool, typer.Option("--drop-bos")] = False,
) -> None:
    """Per cell: done / missing / failed, in array order."""
    from logitdiff.experiments.status import print_status

    reg = Registry.load()
    exp = reg.experiment(experiment)
    cells = expand(reg, exp, _grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus, adl_readout))
    print_status(cells, results_dir, judge, drop_bos)


@app.command()
def show(
    experiment: Annotated[str, typer.Argument(help="mix-ratio, topk-depth, token-positions or n-samples.")],
    model: Model = None,
    organism: Organism = None,
    organism_variant: Variant = None,
    value: Annotated[Optional[str], typer.Option("--value", help="Only this value of the swept parameter.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Only this seed.")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="Only this method: logitdiff or adl.")] = None,
    all_orderings: Annotated[bool, typer.Option("--all-orderings", help="Token tables for every LogitDiff ordering, not only top_k_occurring.")] = False,
    seeds: Seeds = None,
    values: Values = None,
    samples: Samples = None,
    positions: Positions = None,
    top_k: TopK = None,
    corpus: Corpus = None,
    results_dir: ResultsDir = Path("results"),
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge whose grades to show.")] = None,
    drop_bos: Annotated[bool, typer.Option("--drop-bos")] = False,
) -> None:
    """Print graded top tokens (weights, labels) and the relevance table from stored results."""
    from rich.console import Console

    from logitdiff.experiments.judge_choice import resolve_judge_id
    from logitdiff.report.show import select_cells, show as show_tables
    from logitdiff.results.store import ResultsStore

    if method not in (None, "logitdiff", "adl"):
        raise UserError(f"--method must be logitdiff or adl, got {method!r}")
    reg = Registry.load()
    exp = reg.experiment(experiment)
    cells = expand(reg, exp, _grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus))
    chosen = select_cells(cells, value, seed, method)
    if not chosen:
        given = " ".join(f"--{k} {v}" for k, v in (("value", value), ("seed", seed), ("method", method)) if v is not None)
        raise UserError(
            f"no cell of {exp.cli_name} matches {given}; "
            f"values: {', '.join(dict.fromkeys(str(c.value) for c in cells))}; seeds: {', '.join(dict.fromkeys(str(c.seed) for c in cells))}"
        )
    if not show_tables(chosen, ResultsStore(results_dir, drop_bos=drop_bos), resolve_judge_id(judge), Console(), all_orderings=all_orderings):
        raise typer.Exit(1)


def _wants_organism_app(argv: list[str]) -> bool:
    """The organism recipe imports torch/transformers (~9 s); load it only when it can be reached."""
    return not argv or argv[0] in ("organism", "--help", "-h")


def main() -> None:
    if _wants_organism_app(sys.argv[1:]):
        from logitdiff.organism.cli import organism_app

        app.add_typer(organism_app, name="organism", help="Build the offline model organism.")
    try:
        # Not standalone: usage errors (unknown option, bad value) come back here instead of being
        # drawn as a multi-line box, so they end in one line like every other user error.
        code = app(standalone_mode=False)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except TyperException as exc:
        message = exc.format_message()
        if "\n" in message.strip():  # a command given without arguments: its help text
            typer.echo(message, err=True)
        else:
            ctx = getattr(exc, "ctx", None)
            typer.echo(f"error: {message}{f' (see {ctx.command_path} --help)' if ctx is not None else ''}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
