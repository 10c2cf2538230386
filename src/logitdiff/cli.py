"""`logitdiff` command line: parse and validate options, then hand over. No experiment logic here.

There is one command per file of configs/experiments (its `cli_name`), made when `main` runs: adding
an experiment is adding a YAML file. Every option is declared once below and belongs to an option
group (a dataclass); a command names the groups it needs as parameters (`with_groups`), so two commands
never declare the same option twice. Run options take their defaults from RunSettings.
"""

from __future__ import annotations

import errno
import inspect
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Optional, get_args, get_type_hints

import typer
from typer.core import TyperOption
from typer.exceptions import TyperException

from logitdiff.config.loader import Registry
from logitdiff.config.schema import ExperimentConfig, SweptParameter
from logitdiff.core.cache_dir import default_cache_dir
from logitdiff.core.errors import UserError
from logitdiff.core.output import configure_output
from logitdiff.experiments.grid import SWEPT_FLAG, ArrayUnit, GridOptions, array_units, expand
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


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UserError(f"{flag} expects comma-separated integers like 42,1042; got {text!r}") from exc


def _str_list(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _folder(text: str | Path | None) -> Path | None:
    """A folder option: an empty string would silently mean the current folder."""
    if text is None or isinstance(text, Path):  # the default
        return text
    if not text.strip():
        raise typer.BadParameter("an empty path; pass a folder (it is created if missing)")
    return Path(text)


ExperimentArg = Annotated[str, typer.Argument(help="An experiment's command name (`logitdiff grid --list` lists them).")]

# Every option is declared once, here; the option groups below are made of these.
Model = Annotated[Optional[str], typer.Option("--model", help="Model name from configs/models (default: the experiment's).")]
Organism = Annotated[Optional[str], typer.Option(
    "--organism", help="Organism name from configs/organisms, a comma-separated list of them, or all (every organism of --model); "
    "the organisms' finetunes of one base model share its passes.")]
Variant = Annotated[Optional[str], typer.Option("--organism-variant", help="Organism variant (not for the experiments that sweep it).")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", help="Comma-separated seeds, e.g. 42,1042 (default: the grid's five).")]
Values = Annotated[Optional[str], typer.Option("--values", help="Comma-separated values of the swept parameter.")]
Samples = Annotated[Optional[int], typer.Option("--samples", min=1, help="S: texts per cell (refused where S is swept).")]
Positions = Annotated[Optional[int], typer.Option("--positions", min=1, help="T: positions per text (refused where T is swept).")]
TopK = Annotated[Optional[int], typer.Option("--top-k", min=1, help="K: top-K depth (refused where K is swept).")]
Corpus = Annotated[Optional[str], typer.Option("--corpus", help="Diffing corpus: HF dataset id or local .jsonl[.gz]/.parquet/.txt.")]
AdlReadoutOpt = Annotated[Optional[str], typer.Option("--adl-readout", help="ADL readout of δ: lens (logit lens, as in the paper), patchscope (auto-patchscope) or both (default: lens; show: every readout with stored grades).")]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="full: + agent; diffing: no agent; plotting: plots from stored results only.")]
ArrayJob = Annotated[bool, typer.Option("--array-job", help="Run the unit selected by SLURM_ARRAY_TASK_ID (ids past the last unit: plotting).")]
ArrayUnitOpt = Annotated[str, typer.Option("--array-unit", help="What one array task runs: 'cell' or 'pass' (all cells of one model pass).")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", parser=_folder, help="Raw results (reused across experiments).")]
OutputDir = Annotated[Path, typer.Option("--output-dir", parser=_folder, help="Plots and summaries: <output-dir>/<experiment>/<model>/<organism>/.")]
Judge = Annotated[Optional[str], typer.Option("--judge", help=f"'offline' or an LLM id like {DEFAULT_JUDGE_LLM} (default: that one if a key is set, else offline); status and show read this judge's grades.")]
AgentLlm = Annotated[str, typer.Option("--agent-llm", help="Interpretability agent LLM id (mode full).")]
GraderLlm = Annotated[str, typer.Option("--grader-llm", help="Hypothesis grader LLM id (mode full).")]
AgentBudget = Annotated[int, typer.Option("--agent-budget", min=0, help="Model interactions the agent may spend.")]
AgentRuns = Annotated[int, typer.Option("--agent-runs", min=1, help="Agent runs per cell and method (mode full).")]
GraderRuns = Annotated[int, typer.Option("--grader-runs", min=1, help="Grader runs per agent hypothesis (mode full).")]
AgentMaxNewTokens = Annotated[int, typer.Option("--agent-max-new-tokens", min=1, help="Tokens the studied model may generate per agent query.")]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 … (default: cuda if present).")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]
DeviceMap = Annotated[Optional[str], typer.Option("--device-map", help="accelerate device map for models that do not fit one GPU: auto, balanced, balanced_low_0, sequential.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Texts per forward batch (default: chosen from free memory).")]
DropBos = Annotated[bool, typer.Option("--drop-bos", help="Do not count the BOS position.")]
Orderings = Annotated[Optional[str], typer.Option("--orderings", help="LogitDiff orderings to grade, comma-separated: top_k_occurring and fraction_positive_diff (always, from the same counters), nmf (adds NMF topics of the top-K matrix; memory 12·S·T·K bytes per cell).")]
NmfTopics = Annotated[int, typer.Option("--nmf-topics", min=1, help="NMF topics per cell (with --orderings …,nmf).")]
NmfMode = Annotated[str, typer.Option("--nmf-mode", help="NMF matrix entries: logit_diff_magnitude (the top-K d values) or binary_occurrence (1 per top-K member).")]
NmfOrthogonality = Annotated[float, typer.Option("--nmf-orthogonality", min=0.0, help="Weight of a penalty on tokens shared between NMF topics (0: plain NMF).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Recompute cells that are already stored.")]
CacheDir = Annotated[Optional[Path], typer.Option("--cache-dir", parser=_folder, help="Cache of judge/agent/grader answers and frequent tokens; a rerun sends only unanswered requests (default: $LOGITDIFF_CACHE, else ~/.cache/logitdiff).")]
_WORST = parse_llm_id(DEFAULT_JUDGE_LLM).worst_case_s()
LlmTimeout = Annotated[float, typer.Option(
    "--llm-timeout", min=0.001, help=f"Seconds one judge/agent/grader request may take before it is retried (default {DEFAULT_TIMEOUT_S:g}). "
    f"Worst case for a server that never answers: (retries + 1) x timeout + backoff ({_WORST:.0f} s = {_WORST / 60:.1f} min at the defaults); "
    "after one request has timed out on every attempt the run's other requests to that LLM fail at once.")]
LlmRetries = Annotated[int, typer.Option(
    "--llm-retries", min=0, help=f"Retries of a request after a 429, 5xx, malformed reply, reset or timeout (default {DEFAULT_RETRIES}); "
    "backoff 1, 2, 4 … s with jitter, longer if the server sends Retry-After (at most 60 s).")]
Check = Annotated[bool, typer.Option("--check", help="Validate every option (models, organism, variants, values, K within the vocabulary, LLM ids, the corpus and its usable texts), print the cell count of each experiment and exit.")]


def _run_default(field: str) -> Any:
    """RunSettings holds the run options' defaults; the CLI shows and passes the same values."""
    return RunSettings.model_fields[field].default


# ---- option groups: a command names a group as one parameter and gets all of its options ------------


@dataclass(frozen=True)
class TargetFlags:
    """What is diffed, on which texts and seeds: every command that expands a grid takes these."""

    model: Model = None
    organism: Organism = None
    organism_variant: Variant = None
    seeds: Seeds = None
    corpus: Corpus = None
    adl_readout: AdlReadoutOpt = None  # None: the command's default (see the option's help)
    drop_bos: DropBos = GridOptions.drop_bos  # another result: part of each cell, like the values above
    orderings: Orderings = None  # None: the counters' two orderings
    nmf_topics: NmfTopics = GridOptions.nmf_topics
    nmf_mode: NmfMode = GridOptions.nmf_mode
    nmf_orthogonality: NmfOrthogonality = GridOptions.nmf_orthogonality


@dataclass(frozen=True)
class SweepFlags:
    """The swept values and the fixed S, T, K of one experiment (a study runs each grid's own)."""

    values: Values = None
    samples: Samples = None
    positions: Positions = None
    top_k: TopK = None


def grid_options(target: TargetFlags, sweep: SweepFlags = SweepFlags()) -> GridOptions:
    return GridOptions(
        model=target.model,
        organism=target.organism,
        variant=target.organism_variant,
        seeds=_int_list(target.seeds, "--seeds"),
        values=_str_list(sweep.values),
        samples=sweep.samples,
        positions=sweep.positions,
        top_k=sweep.top_k,
        corpus=target.corpus,
        adl_readout=target.adl_readout or GridOptions.adl_readout,
        drop_bos=target.drop_bos,
        orderings=tuple(_str_list(target.orderings) or GridOptions.orderings),
        nmf_topics=target.nmf_topics,
        nmf_mode=target.nmf_mode,
        nmf_orthogonality=target.nmf_orthogonality,
    )


@dataclass(frozen=True)
class StoreFlags:
    """Where results are stored and which judge's grades count: runs, status and show read them alike."""

    results_dir: ResultsDir = _run_default("results_dir")
    judge: Judge = _run_default("judge")


@dataclass(frozen=True)
class ArrayFlags:
    array_job: ArrayJob = _run_default("array_job")
    array_unit: ArrayUnitOpt = _run_default("array_unit")

    def unit(self) -> ArrayUnit:
        return _array_unit(self.array_unit)


def _array_unit(unit: str) -> ArrayUnit:
    if unit not in ("cell", "pass"):
        raise UserError(f"--array-unit must be 'cell' or 'pass', got {unit!r}")
    return unit  # type: ignore[return-value]


@dataclass(frozen=True)
class RunFlags:
    """The options of a run besides its grid: with StoreFlags and ArrayFlags, exactly RunSettings' fields
    (tests/test_cli.py holds them equal), so every run command offers every run setting."""

    store: StoreFlags
    mode: ModeOpt = _run_default("mode")
    output_dir: OutputDir = _run_default("output_dir")
    agent_llm: AgentLlm = _run_default("agent_llm")
    grader_llm: GraderLlm = _run_default("grader_llm")
    agent_budget: AgentBudget = _run_default("agent_budget")
    agent_runs: AgentRuns = _run_default("agent_runs")
    grader_runs: GraderRuns = _run_default("grader_runs")
    agent_max_new_tokens: AgentMaxNewTokens = _run_default("agent_max_new_tokens")
    device: Device = _run_default("device")
    dtype: Dtype = _run_default("dtype")
    device_map: DeviceMap = _run_default("device_map")
    batch_size: BatchSize = _run_default("batch_size")
    overwrite: Overwrite = _run_default("overwrite")
    cache_dir: CacheDir = None
    llm_timeout_s: LlmTimeout = _run_default("llm_timeout_s")
    llm_retries: LlmRetries = _run_default("llm_retries")

    def settings(self, experiment: str, grid: GridOptions, array: ArrayFlags = ArrayFlags()) -> RunSettings:
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "store"}
        return RunSettings(
            experiment=experiment,
            grid=grid,
            array_job=array.array_job,
            array_unit=array.unit(),
            **asdict(self.store),
            **own | {"cache_dir": self.cache_dir or default_cache_dir()},  # resolved here, once; passed down from RunSettings
        )


def _group_params(cls: type) -> list[inspect.Parameter]:
    """The command-line parameters of an option group: its fields, and the fields of the groups it holds."""
    hints = get_type_hints(cls, include_extras=True)
    params: list[inspect.Parameter] = []
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            params += _group_params(hints[f.name])
        else:
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]))
    return params


def _build_group(cls: type, values: dict[str, Any]) -> Any:
    hints = get_type_hints(cls, include_extras=True)
    return cls(**{f.name: _build_group(hints[f.name], values) if is_dataclass(hints[f.name]) else values.pop(f.name) for f in fields(cls)})


def with_groups(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn`'s parameters typed with an option group become that group's options on the command line;
    `fn` is called with the group built from them. Its other parameters stay as they are."""
    hints = get_type_hints(fn, include_extras=True)
    groups = {name: hint for name, hint in hints.items() if is_dataclass(hint)}
    params: list[inspect.Parameter] = []
    for p in inspect.signature(fn).parameters.values():
        params += _group_params(groups[p.name]) if p.name in groups else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])]
    names = [p.name for p in params]
    assert len(names) == len(set(names)), f"{fn.__name__}: an option is in two of its groups"

    def command(**values: Any) -> None:
        built = {name: _build_group(cls, values) for name, cls in groups.items()}
        fn(**values, **built)

    command.__name__, command.__doc__ = fn.__name__, fn.__doc__
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


# ---- commands --------------------------------------------------------------------------------------


def _experiment_command(cli_name: str) -> Callable[..., None]:
    def command(target: TargetFlags, sweep: SweepFlags, array: ArrayFlags, run: RunFlags, check: Check = False) -> None:
        settings = run.settings(cli_name, grid_options(target, sweep), array)
        if check:
            from logitdiff.experiments.cost import check_plan
            from logitdiff.experiments.validate import validated_cells

            cells = validated_cells(_registry(), settings)
            typer.echo(f"ok: {cli_name}, {len(cells)} cells")
            typer.echo(check_plan(_registry(), settings, [cells]).line(), err=True)
            return
        from logitdiff.experiments.runner import run_experiment

        summary = run_experiment(_registry(), settings)
        if summary.failed:
            raise typer.Exit(1)  # failures are listed in the summary; the stored cells stay usable

    command.__doc__ = f"Run the {cli_name} experiment grid (see configs/experiments)."
    return with_groups(command)


@with_groups
def study(
    target: TargetFlags,
    run: RunFlags,
    experiments: Annotated[Optional[str], typer.Option(
        "--experiments", help="Comma-separated experiments to run together (`logitdiff grid --list` lists them).", show_default="all")] = None,
    check: Check = False,
) -> None:
    """Run several experiment grids together (default: all configured) with their cells planned into the fewest passes."""
    reg = _registry()
    known = [e.cli_name for e in _experiments(reg)]
    names = known if experiments is None else _str_list(experiments) or []
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(f"--experiments takes a comma-separated subset of {', '.join(known)}; got {experiments!r}")
    # The variant option goes to the experiments that do not sweep it (like the launchers do).
    settings = [
        run.settings(name, grid_options(replace(target, organism_variant=None) if reg.experiment(name).swept == "variant" else target))
        for name in dict.fromkeys(names)
    ]
    if check:
        from logitdiff.experiments.cost import check_plan
        from logitdiff.experiments.validate import validated_cells

        grids = [validated_cells(reg, s) for s in settings]
        typer.echo("ok: " + ", ".join(f"{s.experiment} {len(cells)} cells" for s, cells in zip(settings, grids, strict=True)))
        typer.echo(check_plan(reg, settings[0], grids).line(), err=True)
        return
    from logitdiff.experiments.runner import run_study

    if run_study(reg, settings).failed:
        raise typer.Exit(1)


@with_groups
def grid(
    ctx: typer.Context,
    target: TargetFlags,
    sweep: SweepFlags,
    experiment: Annotated[Optional[str], typer.Argument(
        help="An experiment's command name (required unless --list or --list-options).", show_default=False)] = None,
    list_experiments: Annotated[bool, typer.Option(
        "--list", help="Print each configured experiment, one line each: its command name, a tab, the option of the parameter it sweeps.")] = False,
    list_options: Annotated[bool, typer.Option(
        "--list-options", help="Print the options of this command that change the cells or array tasks, one line each.")] = False,
    count: Annotated[bool, typer.Option("--count", help="Print only the number of array tasks.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the cells as JSON.")] = False,
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
    cells = expand(reg, reg.experiment(experiment), grid_options(target, sweep))
    units = array_units(cells, _array_unit(array_unit))
    if count:
        typer.echo(len(units))
    elif as_json:
        typer.echo(json.dumps([[c.model_dump() for c in unit] if array_unit == "pass" else unit[0].model_dump() for unit in units], indent=1))
    else:
        for task, unit in enumerate(units):
            typer.echo(f"task {task}: " + "; ".join(c.label() for c in unit))
        typer.echo(f"task {len(units)}+: plotting only")


@with_groups
def status(experiment: ExperimentArg, target: TargetFlags, sweep: SweepFlags, store: StoreFlags) -> None:
    """Per cell: done / missing / failed, in array order."""
    from logitdiff.experiments.status import print_status

    reg = _registry()
    cells = expand(reg, reg.experiment(experiment), grid_options(target, sweep))
    print_status(cells, store.results_dir, store.judge)


@with_groups
def show(
    experiment: ExperimentArg,
    target: TargetFlags,
    sweep: SweepFlags,
    store: StoreFlags,
    value: Annotated[Optional[str], typer.Option("--value", help="Only this value of the swept parameter.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Only this seed.")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="Only this method: logitdiff or adl.")] = None,
    all_orderings: Annotated[bool, typer.Option("--all-orderings", help="Token tables for every LogitDiff ordering, not only top_k_occurring.")] = False,
) -> None:
    """Print the relevance the plots draw, per graded list, and the graded top tokens (weights, labels) from stored results."""
    from rich.console import Console

    from logitdiff.experiments.judge_choice import resolve_judge_id
    from logitdiff.registry import METHODS, results_store
    from logitdiff.report.show import select_cells, stored_readouts
    from logitdiff.report.show import show as show_tables

    if method is not None and method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    reg = _registry()
    exp = reg.experiment(experiment)
    results, judge_id = results_store(store.results_dir), resolve_judge_id(store.judge)
    # Without --adl-readout: every readout that has stored grades, labelled (as the plots show them).
    cells = expand(reg, exp, grid_options(replace(target, adl_readout=target.adl_readout or "both"), sweep))
    if target.adl_readout is None:
        cells = stored_readouts(cells, results, judge_id)
    chosen = select_cells(cells, value, seed, method)
    if not chosen:
        given = " ".join(f"--{k} {v}" for k, v in (("value", value), ("seed", seed), ("method", method)) if v is not None)
        raise UserError(
            f"no cell of {exp.cli_name} matches {given}; "
            f"values: {', '.join(dict.fromkeys(str(c.value) for c in cells))}; seeds: {', '.join(dict.fromkeys(str(c.seed) for c in cells))}"
        )
    organisms = list(dict.fromkeys(c.organism for c in chosen))  # one set of tables per organism, like the plots
    shown = [show_tables([c for c in chosen if c.organism == o], results, judge_id, Console(), all_orderings=all_orderings) for o in organisms]
    if not all(shown):
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


def organisms(
    model: Annotated[Optional[str], typer.Option("--model", help="Only organisms with finetunes of this base model.")] = None,
    organism_type: Annotated[Optional[str], typer.Option("--type", help="Only organisms of this type (e.g. SDF, behavioral_anomaly).")] = None,
) -> None:
    """List the configured organisms: type, training data, and the variants of each base model."""
    from logitdiff.config.listing import organism_listing

    for line in organism_listing(_registry(), model, organism_type):
        typer.echo(line)


def _add_commands(reg: Registry) -> None:
    """One command per configured experiment, then the commands that work across them (help lists
    commands in this order)."""
    for exp in _experiments(reg):
        app.command(name=exp.cli_name)(_experiment_command(exp.cli_name))
    for command in (study, grid, status, show, report, organisms):
        app.command()(command)


class Stopped(BaseException):
    """SIGTERM (a batch system's preemption or time limit) or SIGINT (Ctrl-C) stops the run. Not a
    KeyboardInterrupt: typer would swallow that into a bare exit code 130, and not an Exception, so
    that no `except Exception` on the way up records it as a failed cell."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _stopped_line(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"stopped by {name}: every result stored so far is whole; run the same command again to continue"


def _storage_line(exc: OSError) -> str:
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"error: {exc.strerror or 'no space left'}{where}: free space (or quota) there, or point --results-dir / "
            "--output-dir / --cache-dir elsewhere, and run the same command again; results stored so far are whole")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show library warnings (deprecations) and full tracebacks of storage errors.")] = False) -> None:
    """Model-diffing experiments: LogitDiff TopK and ADL on a base vs finetuned model."""
    # -v is read by main() before any library is imported; declared here so that it is an option.


def _wants_organism_app(argv: list[str]) -> bool:
    """The organism recipe imports torch/transformers (~9 s); load it only when it can be reached."""
    return not argv or argv[0] in ("organism", "--help", "-h")


def main() -> None:
    argv = sys.argv[1:]
    words = argv[1:] if argv[:1] in (["-v"], ["--verbose"]) else argv
    configure_output("-v" in argv[:1] or "--verbose" in argv[:1])  # before any library is imported
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    try:
        if not words or words[0] != "organism":  # building the organism needs no configs
            _add_commands(_registry())
        if _wants_organism_app(words):
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
    except Stopped as exc:
        typer.echo(_stopped_line(exc.signum), err=True)
        sys.exit(128 + exc.signum)  # the shell's convention for a process ended by a signal
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or words != argv:  # -v: the whole traceback
            raise
        typer.echo(_storage_line(exc), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
