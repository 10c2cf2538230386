"""`logitdiff` command line: parse and validate options, then hand over. No experiment logic here.

There is one command per file of configs/experiments (its `cli_name`), made when `main` runs: adding
an experiment is adding a YAML file. Every option is declared once below; run options take their
defaults from RunSettings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer
from typer.core import TyperOption
from typer.exceptions import TyperException

from logitdiff.config.loader import Registry
from logitdiff.config.schema import ExperimentConfig, SweptParameter
from logitdiff.core.cache_dir import default_cache_dir
from logitdiff.core.errors import UserError
from logitdiff.experiments.grid import SWEPT_FLAG, GridOptions, array_units, expand
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.llm.spec import DEFAULT_JUDGE_LLM, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, parse_llm_id

app = typer.Typer(
    help="Model-diffing experiments: LogitDiff TopK and ADL on a base vs finetuned model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@cache
def _registry() -> Registry:
    """configs/ is read once per process: for the list of commands and by the command that runs."""
    return Registry.load()


def _experiments(reg: Registry) -> list[ExperimentConfig]:
    """The configured experiments in the schema's order of the parameter they sweep, then by name:
    the order that help, `study` and the launchers have always used (mix-ratio first)."""
    order: tuple[SweptParameter, ...] = get_args(SweptParameter)
    return sorted(reg.experiments.values(), key=lambda e: (order.index(e.swept), e.name))


def _run_default(field: str) -> Any:
    """RunSettings holds the run options' defaults; the CLI shows and passes the same values."""
    return RunSettings.model_fields[field].default


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UserError(f"{flag} expects comma-separated integers like 42,1042; got {text!r}") from exc


def _str_list(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


ExperimentArg = Annotated[str, typer.Argument(help="An experiment's command name (`logitdiff grid --list` lists them).")]

# Grid options: what GridOptions holds (see _grid_options).
Model = Annotated[Optional[str], typer.Option("--model", help="Model name from configs/models (default: the experiment's).")]
Organism = Annotated[Optional[str], typer.Option("--organism", help="Organism name from configs/organisms.")]
Variant = Annotated[Optional[str], typer.Option("--organism-variant", help="Organism variant (not for the experiments that sweep it).")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", help="Comma-separated seeds, e.g. 42,1042 (default: the grid's five).")]
Values = Annotated[Optional[str], typer.Option("--values", help="Comma-separated values of the swept parameter.")]
Samples = Annotated[Optional[int], typer.Option("--samples", min=1, help="S: texts per cell (refused where S is swept).")]
Positions = Annotated[Optional[int], typer.Option("--positions", min=1, help="T: positions per text (refused where T is swept).")]
TopK = Annotated[Optional[int], typer.Option("--top-k", min=1, help="K: top-K depth (refused where K is swept).")]
Corpus = Annotated[Optional[str], typer.Option("--corpus", help="Diffing corpus: HF dataset id or local .jsonl[.gz]/.parquet/.txt.")]
AdlReadoutOpt = Annotated[str, typer.Option("--adl-readout", help="ADL readout of δ: lens (logit lens, as in the paper), patchscope (auto-patchscope) or both.")]
_ADL_READOUT = GridOptions.adl_readout

# Run options: the fields of RunSettings (a command's parameter is named like its field).
ModeOpt = Annotated[Mode, typer.Option("--mode", help="full: + agent; diffing: no agent; plotting: plots from stored results only.")]
ArrayJob = Annotated[bool, typer.Option("--array-job", help="Run the unit selected by SLURM_ARRAY_TASK_ID (ids past the last unit: plotting).")]
ArrayUnitOpt = Annotated[str, typer.Option("--array-unit", help="What one array task runs: 'cell' or 'pass' (all cells of one model pass).")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", help="Raw results (reused across experiments).")]
OutputDir = Annotated[Path, typer.Option("--output-dir", help="Plots and summaries: <output-dir>/<experiment>/<model>/<organism>/.")]
Judge = Annotated[Optional[str], typer.Option("--judge", help=f"'offline' or an LLM id like {DEFAULT_JUDGE_LLM} (default: that one if a key is set, else offline).")]
AgentLlm = Annotated[str, typer.Option("--agent-llm", help="Interpretability agent LLM id (mode full).")]
GraderLlm = Annotated[str, typer.Option("--grader-llm", help="Hypothesis grader LLM id (mode full).")]
AgentBudget = Annotated[int, typer.Option("--agent-budget", min=0, help="Model interactions the agent may spend.")]
AgentRuns = Annotated[int, typer.Option("--agent-runs", min=1)]
GraderRuns = Annotated[int, typer.Option("--grader-runs", min=1)]
AgentMaxNewTokens = Annotated[int, typer.Option("--agent-max-new-tokens", min=1)]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 … (default: cuda if present).")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]
DeviceMap = Annotated[Optional[str], typer.Option("--device-map", help="accelerate device map (e.g. auto) for models that do not fit one GPU.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Texts per forward batch (default: chosen from free memory).")]
DropBos = Annotated[bool, typer.Option("--drop-bos", help="Do not count the BOS position.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Recompute cells that are already stored.")]
CacheDir = Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache of judge/agent/grader answers and frequent tokens; a rerun sends only unanswered requests (default: $LOGITDIFF_CACHE, else ~/.cache/logitdiff).")]
_WORST = parse_llm_id(DEFAULT_JUDGE_LLM).worst_case_s()
LlmTimeout = Annotated[float, typer.Option(
    "--llm-timeout", min=0.001, help=f"Seconds one judge/agent/grader request may take before it is retried (default {DEFAULT_TIMEOUT_S:g}). "
    f"Worst case for a server that never answers: (retries + 1) x timeout + backoff ({_WORST:.0f} s = {_WORST / 60:.1f} min at the defaults); "
    "after one request has timed out on every attempt the run's other requests to that LLM fail at once.")]
LlmRetries = Annotated[int, typer.Option(
    "--llm-retries", min=0, help=f"Retries of a request after a 429, 5xx, malformed reply, reset or timeout (default {DEFAULT_RETRIES}); "
    "backoff 1, 2, 4 … s with jitter, longer if the server sends Retry-After (at most 60 s).")]
Check = Annotated[bool, typer.Option("--check", help="Validate every option (models, organism, variants, values, K within the vocabulary, LLM ids, corpus file), print the cell count of each experiment and exit.")]


def _grid_options(
    model: str | None, organism: str | None, variant: str | None, seeds: str | None, values: str | None,
    samples: int | None, positions: int | None, top_k: int | None, corpus: str | None, adl_readout: str = _ADL_READOUT,
) -> GridOptions:
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


def _run_options(params: dict[str, Any]) -> dict[str, Any]:
    """A command's run options, given its parameters (`locals()`): those named like a RunSettings field,
    so the command's option list and RunSettings cannot drift apart."""
    run = {k: v for k, v in params.items() if k in RunSettings.model_fields and k not in ("experiment", "grid")}
    run["cache_dir"] = run["cache_dir"] or default_cache_dir()  # resolved here, once; passed down from RunSettings
    return run


def _check_unit(unit: str) -> str:
    if unit not in ("cell", "pass"):
        raise UserError(f"--array-unit must be 'cell' or 'pass', got {unit!r}")
    return unit


def _experiment_command(cli_name: str) -> Callable[..., None]:
    def command(
        model: Model = None,
        organism: Organism = None,
        organism_variant: Variant = None,
        mode: ModeOpt = _run_default("mode"),
        array_job: ArrayJob = _run_default("array_job"),
        array_unit: ArrayUnitOpt = _run_default("array_unit"),
        seeds: Seeds = None,
        values: Values = None,
        samples: Samples = None,
        positions: Positions = None,
        top_k: TopK = None,
        corpus: Corpus = None,
        adl_readout: AdlReadoutOpt = _ADL_READOUT,
        results_dir: ResultsDir = _run_default("results_dir"),
        output_dir: OutputDir = _run_default("output_dir"),
        judge: Judge = _run_default("judge"),
        agent_llm: AgentLlm = _run_default("agent_llm"),
        grader_llm: GraderLlm = _run_default("grader_llm"),
        agent_budget: AgentBudget = _run_default("agent_budget"),
        agent_runs: AgentRuns = _run_default("agent_runs"),
        grader_runs: GraderRuns = _run_default("grader_runs"),
        agent_max_new_tokens: AgentMaxNewTokens = _run_default("agent_max_new_tokens"),
        device: Device = _run_default("device"),
        dtype: Dtype = _run_default("dtype"),
        device_map: DeviceMap = _run_default("device_map"),
        batch_size: BatchSize = _run_default("batch_size"),
        drop_bos: DropBos = _run_default("drop_bos"),
        overwrite: Overwrite = _run_default("overwrite"),
        cache_dir: CacheDir = None,
        llm_timeout_s: LlmTimeout = _run_default("llm_timeout_s"),
        llm_retries: LlmRetries = _run_default("llm_retries"),
        check: Check = False,
    ) -> None:
        run = _run_options(locals())
        grid = _grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus, adl_readout)
        _check_unit(array_unit)
        settings = RunSettings(experiment=cli_name, grid=grid, **run)
        if check:
            from logitdiff.experiments.validate import validated_cells

            typer.echo(f"ok: {cli_name}, {len(validated_cells(_registry(), settings))} cells")
            return
        from logitdiff.experiments.runner import run_experiment

        summary = run_experiment(_registry(), settings)
        if summary.failed:
            raise typer.Exit(1)  # failures are listed in the summary; the stored cells stay usable

    command.__doc__ = f"Run the {cli_name} experiment grid (see configs/experiments)."
    return command


def study(
    model: Model = None,
    organism: Organism = None,
    organism_variant: Variant = None,
    mode: ModeOpt = _run_default("mode"),
    seeds: Seeds = None,
    experiments: Annotated[Optional[str], typer.Option(
        "--experiments", help="Comma-separated experiments to run together (`logitdiff grid --list` lists them).", show_default="all")] = None,
    corpus: Corpus = None,
    adl_readout: AdlReadoutOpt = _ADL_READOUT,
    results_dir: ResultsDir = _run_default("results_dir"),
    output_dir: OutputDir = _run_default("output_dir"),
    judge: Judge = _run_default("judge"),
    agent_llm: AgentLlm = _run_default("agent_llm"),
    grader_llm: GraderLlm = _run_default("grader_llm"),
    agent_budget: AgentBudget = _run_default("agent_budget"),
    device: Device = _run_default("device"),
    dtype: Dtype = _run_default("dtype"),
    batch_size: BatchSize = _run_default("batch_size"),
    drop_bos: DropBos = _run_default("drop_bos"),
    overwrite: Overwrite = _run_default("overwrite"),
    cache_dir: CacheDir = None,
    llm_timeout_s: LlmTimeout = _run_default("llm_timeout_s"),
    llm_retries: LlmRetries = _run_default("llm_retries"),
    check: Check = False,
) -> None:
    """Run several experiment grids together (default: all configured) with their cells planned into the fewest passes."""
    run = _run_options(locals())
    reg = _registry()
    known = [e.cli_name for e in _experiments(reg)]
    names = known if experiments is None else _str_list(experiments) or []
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(f"--experiments takes a comma-separated subset of {', '.join(known)}; got {experiments!r}")
    settings = [
        RunSettings(
            experiment=name,
            # The variant option goes to the experiments that do not sweep it (like the launchers do).
            grid=_grid_options(model, organism, None if reg.experiment(name).swept == "variant" else organism_variant,
                               seeds, None, None, None, None, corpus, adl_readout),
            **run,
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


def grid(
    ctx: typer.Context,
    experiment: Annotated[Optional[str], typer.Argument(
        help="An experiment's command name (required unless --list or --list-options).", show_default=False)] = None,
    list_experiments: Annotated[bool, typer.Option(
        "--list", help="Print each configured experiment, one line each: its command name, a tab, the option of the parameter it sweeps.")] = False,
    list_options: Annotated[bool, typer.Option(
        "--list-options", help="Print the options of this command that change the cells or array tasks, one line each.")] = False,
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
    adl_readout: AdlReadoutOpt = _ADL_READOUT,
    array_unit: ArrayUnitOpt = _run_default("array_unit"),
) -> None:
    """List the cells of an experiment in array order (seed-major), or the experiments (--list)."""
    reg = _registry()
    if list_experiments:
        for exp in _experiments(reg):
            typer.echo(f"{exp.cli_name}\t{SWEPT_FLAG[exp.swept]}")
        return
    if list_options:
        # The launchers give these to `grid` too, so an array is sized like the run it holds.
        printing = {"list_experiments", "list_options", "count", "as_json"}
        for param in ctx.command.params:
            if isinstance(param, TyperOption) and param.name not in printing:
                typer.echo(param.opts[0])
        return
    if experiment is None:
        raise UserError(f"Missing argument 'experiment'. (see {ctx.command_path} --help)")
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


def status(
    experiment: ExperimentArg,
    model: Model = None,
    organism: Organism = None,
    organism_variant: Variant = None,
    seeds: Seeds = None,
    values: Values = None,
    samples: Samples = None,
    positions: Positions = None,
    top_k: TopK = None,
    corpus: Corpus = None,
    adl_readout: AdlReadoutOpt = _ADL_READOUT,
    results_dir: ResultsDir = _run_default("results_dir"),
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge whose grades count as done.")] = None,
    drop_bos: DropBos = _run_default("drop_bos"),
) -> None:
    """Per cell: done / missing / failed, in array order."""
    from logitdiff.experiments.status import print_status

    reg = _registry()
    exp = reg.experiment(experiment)
    cells = expand(reg, exp, _grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus, adl_readout))
    print_status(cells, results_dir, judge, drop_bos)


def show(
    experiment: ExperimentArg,
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
    adl_readout: Annotated[Optional[str], typer.Option(
        "--adl-readout", help="ADL readout to show: lens, patchscope or both.", show_default="every readout with stored grades")] = None,
    results_dir: ResultsDir = _run_default("results_dir"),
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge whose grades to show.")] = None,
    drop_bos: DropBos = _run_default("drop_bos"),
) -> None:
    """Print the relevance the plots draw, per graded list, and the graded top tokens (weights, labels) from stored results."""
    from rich.console import Console

    from logitdiff.experiments.judge_choice import resolve_judge_id
    from logitdiff.report.show import select_cells, stored_readouts
    from logitdiff.report.show import show as show_tables
    from logitdiff.results.store import ResultsStore

    if method not in (None, "logitdiff", "adl"):
        raise UserError(f"--method must be logitdiff or adl, got {method!r}")
    reg = _registry()
    exp = reg.experiment(experiment)
    store, judge_id = ResultsStore(results_dir, drop_bos=drop_bos), resolve_judge_id(judge)
    cells = expand(reg, exp, _grid_options(model, organism, organism_variant, seeds, values, samples, positions, top_k, corpus, adl_readout or "both"))
    if adl_readout is None:
        cells = stored_readouts(cells, store, judge_id)
    chosen = select_cells(cells, value, seed, method)
    if not chosen:
        given = " ".join(f"--{k} {v}" for k, v in (("value", value), ("seed", seed), ("method", method)) if v is not None)
        raise UserError(
            f"no cell of {exp.cli_name} matches {given}; "
            f"values: {', '.join(dict.fromkeys(str(c.value) for c in cells))}; seeds: {', '.join(dict.fromkeys(str(c.seed) for c in cells))}"
        )
    if not show_tables(chosen, store, judge_id, Console(), all_orderings=all_orderings):
        raise typer.Exit(1)


def report(
    target: Annotated[str, typer.Argument(help="'study' (every configured experiment) or an experiment's command name.")],
    model: Annotated[Optional[str], typer.Option("--model", help="Only this model.", show_default="every model found")] = None,
    organism: Annotated[Optional[str], typer.Option("--organism", help="Only this organism.", show_default="every organism found")] = None,
    output_dir: OutputDir = _run_default("output_dir"),
    output_format: Annotated[str, typer.Option("--format", help="md (Markdown tables) or json (the same numbers).")] = "md",
    lists: Annotated[bool, typer.Option("--lists", help="md: also the graded ADL top-20 lists of positions 1-4 (first seed).")] = False,
) -> None:
    """Print the tables of finished runs (token relevance, agent score: the numbers the plots draw) from --output-dir."""
    from logitdiff.report.tables import as_json, find_folders, markdown

    if output_format not in ("md", "json"):
        raise UserError(f"--format must be md or json, got {output_format!r}")
    reg = _registry()
    chosen = _experiments(reg) if target == "study" else [reg.experiment(target)]
    found = find_folders(output_dir, {e.cli_name: e.name for e in chosen}, model, organism)
    if output_format == "json":
        typer.echo(json.dumps([as_json(f) for f in found], indent=1))
    else:
        typer.echo("\n".join(markdown(f, lists=lists) for f in found).rstrip())


def _add_commands(reg: Registry) -> None:
    """One command per configured experiment, then the commands that work across them (help lists
    commands in this order)."""
    for exp in _experiments(reg):
        app.command(name=exp.cli_name)(_experiment_command(exp.cli_name))
    for command in (study, grid, status, show, report):
        app.command()(command)


def _wants_organism_app(argv: list[str]) -> bool:
    """The organism recipe imports torch/transformers (~9 s); load it only when it can be reached."""
    return not argv or argv[0] in ("organism", "--help", "-h")


def main() -> None:
    argv = sys.argv[1:]
    try:
        if not argv or argv[0] != "organism":  # building the organism needs no configs
            _add_commands(_registry())
        if _wants_organism_app(argv):
            from logitdiff.organism.cli import organism_app

            app.add_typer(organism_app, name="organism", help="Build the offline model organism.")
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
