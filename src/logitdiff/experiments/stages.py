"""The per-pass stages of a run: engine pass → relevance grading → agent evaluation.

Each stage first checks the store and only does what is missing (or everything with --overwrite).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.markup import escape

from logitdiff.config.loader import Registry
from logitdiff.config.schema import FinetunedRef, ModelConfig, OrganismConfig
from logitdiff.core.atomic import write_json
from logitdiff.core.cell import Cell
from logitdiff.core.errors import UserError
from logitdiff.engine.models import ModelPair, base_source, load_finetunes, load_pair, load_tokenizer, tokenizer_source
from logitdiff.engine.requests import Request
from logitdiff.engine.streaming_pass import run_variants_pass
from logitdiff.experiments.agent_stage import AgentInputs, AgentSetup, run_agent_stage
from logitdiff.experiments.candidates import candidate_lists, judge_samples
from logitdiff.experiments.control import control_finetune, control_organism
from logitdiff.experiments.judge_choice import judge_label, resolve_judge_id
from logitdiff.experiments.settings import RunSettings
from logitdiff.experiments.summary import RunSummary
from logitdiff.judge.factory import make_judge
from logitdiff.judge.frequent_tokens import FrequentTokens, frequent_training_tokens
from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.relevance import ControlTarget, Judge, grade_lists, unlabelled
from logitdiff.judge.scale_choice import ScaleChoice, ScaleChooser, make_scale_chooser
from logitdiff.llm.client import LLMCallError, LLMClient
from logitdiff.llm.spec import parse_llm_id
from logitdiff.methods.patchscope import AdlPatchscope, PatchscopePosition
from logitdiff.registry import check_method_result, method_result, spec_of
from logitdiff.registry.adl import AdlSpec, load_scale_choices, save_scale_choices, scale_choice_path
from logitdiff.results.method_io import save_pass_record
from logitdiff.results.records import CellFailure, RelevanceResult, relevance_problem
from logitdiff.results.store import AgentKey, ResultsStore

console = Console(stderr=True)

AGENT_TEMPERATURE = 0.7


Finetune = tuple[str, str]  # (organism, variant): one finetune of a shared pass


@dataclass
class _PairCache:
    """Keeps the last loaded weights (one pair, or finetune views of one base): consecutive passes reuse them."""

    key: tuple[str, ...] | None = None  # (model,) for a shared load, (model, organism, variant) for one alone
    tried: frozenset[Finetune] = frozenset()  # what the load was asked for (a full finetune may not have fit)
    pairs: dict[Finetune, ModelPair] = field(default_factory=dict)

    def get(self, key: tuple[str, ...], wanted: list[Finetune], load: Callable[[], dict[Finetune, ModelPair]]) -> dict[Finetune, ModelPair]:
        """The views of `wanted` that the (possibly cached) load holds."""
        if self.key != key or any(w not in self.tried for w in wanted):
            self.pairs = {}  # drop the previous weights before loading the next
            self.pairs = load()
            self.key, self.tried = key, frozenset(wanted)
        return {w: self.pairs[w] for w in wanted if w in self.pairs}

    def held(self, model: str, finetune: Finetune) -> ModelPair | None:
        return self.pairs.get(finetune) if self.key is not None and self.key[0] == model else None

    @property
    def any_pair(self) -> ModelPair | None:
        return next(iter(self.pairs.values()), None)


@dataclass
class Stages:
    reg: Registry
    settings: RunSettings
    store: ResultsStore
    summary: RunSummary
    blackbox: frozenset[Cell] = frozenset()
    # Every organism of the run, in order: each organism's lists are also graded against the next one's description.
    run_organisms: tuple[str, ...] = ()
    judge_id: str = ""
    judge_label: str = ""
    agent: AgentKey | None = None
    judge: Judge | None = None
    agent_llm: LLMClient | None = None
    grader_llm: LLMClient | None = None
    _agent_setup: AgentSetup | None = None
    _pairs: _PairCache = field(default_factory=_PairCache)
    _frequent: dict[tuple[str, str, str], FrequentTokens] = field(default_factory=dict)
    # Cells whose method result was (re)computed in this run: their old grades and agent runs are stale.
    fresh: set[Cell] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.judge_id = resolve_judge_id(self.settings.judge)
        self.judge_label = judge_label(self.judge_id)
        s = self.settings
        self.agent = AgentKey(parse_llm_id(s.agent_llm).id, parse_llm_id(s.grader_llm).id, s.agent_budget)

    # ---- set-up -------------------------------------------------------------------------
    def prepare(self, *, with_agent: bool) -> None:
        """Build the LLM clients and fail, before any model is loaded, if one is unusable (no key, no server)."""
        s = self.settings
        cache = s.llm_cache()
        self.judge = make_judge(s.judge, cache, timeout_s=s.llm_timeout_s, retries=s.llm_retries)
        if isinstance(self.judge, LLMJudge):
            self.judge.client.check_reachable()
        if with_agent:
            # SPEC §6: the agent samples at temperature 0.7 unless its id says otherwise.
            agent_spec = parse_llm_id(s.agent_llm).with_limits(s.llm_timeout_s, s.llm_retries)
            if agent_spec.temperature is None:
                agent_spec = agent_spec.model_copy(update={"temperature": AGENT_TEMPERATURE})
            self.agent_llm = LLMClient(agent_spec, cache, role="agent")
            self.grader_llm = LLMClient(parse_llm_id(s.grader_llm).with_limits(s.llm_timeout_s, s.llm_retries), cache, role="grader")
            self.agent_llm.check_reachable()
            self.grader_llm.check_reachable()
            assert self.agent is not None
            self._agent_setup = AgentSetup(
                store=self.store,
                agent=self.agent,
                judge_id=self.judge_id,
                agent_llm=self.agent_llm,
                grader_llm=self.grader_llm,
                runs=s.agent_runs,
                grader_runs=s.grader_runs,
                max_new_tokens=s.agent_max_new_tokens,
                overwrite=s.overwrite,
                blackbox=self.blackbox,
            )

    def close(self) -> None:
        if self.judge is not None:
            self.summary.llm_usage.append(self.judge.usage_summary())
        for client in (self.agent_llm, self.grader_llm):
            if client is not None:
                self.summary.llm_usage.append(client.usage.summary(client.spec.id))
        self._pairs = _PairCache()

    # ---- helpers --------------------------------------------------------------------------
    def configs(self, cell: Cell) -> tuple[ModelConfig, FinetunedRef, OrganismConfig]:
        return self.reg.model(cell.model), self.reg.finetuned(cell.organism, cell.model, cell.variant), self.reg.organism(cell.organism)

    def pair(self, cell: Cell) -> ModelPair:
        """The cell's finetune as a pair: a view of the weights the last pass loaded when they hold it."""
        key = (cell.organism, cell.variant)
        return self._pairs.held(cell.model, key) or self.pairs([cell])[key]

    def pairs(self, cells: list[Cell], *, alone: bool = False) -> dict[Finetune, ModelPair]:
        """Views of the cells' finetunes (one base model) for one shared pass: LoRA ones as adapters of one
        base copy, full-weight ones beside it where the memory plan lets them fit (the others are left
        out). alone: the one finetune of `cells` as its own pair."""
        model = cells[0].model
        model_cfg = self.reg.model(model)
        wanted = list(dict.fromkeys((c.organism, c.variant) for c in cells))
        refs = {w: self.reg.finetuned(w[0], model, w[1]) for w in wanted}
        s = self.settings
        opts = {"cache_dir": s.cache_dir, "device": s.device, "dtype": s.dtype, "device_map": s.device_map}
        if alone:
            assert len(refs) == 1
            return self._pairs.get((model, *wanted[0]), wanted, lambda: {w: load_pair(model_cfg, r, **opts) for w, r in refs.items()})
        return self._pairs.get((model,), wanted, lambda: load_finetunes(model_cfg, refs, **opts))

    def fail(self, cell: Cell, stage: str, reason: str) -> None:
        write_json(self.store.failure(cell), CellFailure(cell=cell, stage=stage, reason=reason).model_dump())  # type: ignore[arg-type]
        self.summary.failed.append(f"{cell.label()} [{stage}]: {reason}")

    def _method_done(self, cell: Cell) -> bool:
        """Whether the cell's stored method files can be reused; a stale FAILED.json beside them goes."""
        if not method_result(self.store, cell).is_file():
            return False
        try:
            check_method_result(self.store, cell)
        except ValueError as exc:
            console.print(f"[yellow]unreadable result, redoing[/] {escape(cell.label())}: {escape(str(exc))}")
            return False
        self.store.failure(cell).unlink(missing_ok=True)
        return True

    def control_name(self, cell: Cell) -> str | None:
        """The organism whose description is the cell's negative control (cheap: no tokenizer)."""
        return control_organism(self.reg, cell.organism, cell.model, self.run_organisms or (cell.organism,))

    def _relevance_done(self, cell: Cell) -> bool:
        if cell in self.fresh:
            return False
        problem = relevance_problem(self.store, cell, self.judge_id, self.control_name(cell))
        if problem is not None and self.store.relevance(cell, self.judge_id).is_file():
            console.print(f"[yellow]regrading[/] {escape(cell.label())}: {escape(problem)}")
        return problem is None

    # ---- the stages ---------------------------------------------------------------------------
    def run_group(self, group: list[Cell]) -> None:
        ready = self._pass_stage(group)
        self._relevance_stage(ready)
        if self._agent_setup is not None:
            inputs = AgentInputs(pair=self.pair, configs=lambda c: (self.reg.model(c.model), self.reg.organism(c.organism)), fresh=self.fresh, summary=self.summary)
            run_agent_stage(self._agent_setup, inputs, ready)

    def _pass_stage(self, group: list[Cell]) -> list[Cell]:
        """Compute the method results that are missing; returns the cells whose results exist now."""
        need = [c for c in group if self.settings.overwrite or not self._method_done(c)]
        self.summary.reused += len(group) - len(need)
        failed = self._compute(need) if need else []
        return [c for c in group if c not in failed]

    def _compute(self, cells: list[Cell], *, alone: bool = False) -> list[Cell]:
        """One engine pass for all `cells` (finetunes of one base sharing the base forward); returns the cells that failed.

        A full-weight finetune the memory plan does not fit beside the others runs in a pass of its own
        afterwards. If the shared pass fails for a reason the user can fix (e.g. the corpus has too few
        texts for the largest T), it is split by (S, T) slot, then by cell, so only the impossible cells fail.
        """
        first = cells[0]
        wanted = {c: spec_of(c).requests(c) for c in cells}
        later: list[Cell] = []
        try:
            pairs = self.pairs(cells, alone=alone)
            later = [c for c in cells if (c.organism, c.variant) not in pairs]
            if later:
                cells = [c for c in cells if (c.organism, c.variant) in pairs]
            requests: dict[Finetune, list[Request]] = {}
            for c in cells:  # equal requests of several cells are filled once
                mine = requests.setdefault((c.organism, c.variant), [])
                mine += [r for r in wanted[c] if r not in mine]
            # Logit-reading requests first: the order the pass records list them in.
            requests = {w: sorted(reqs, key=lambda r: r.depth == 0) for w, reqs in requests.items()}
            results = run_variants_pass(
                {w: pairs[w] for w in requests}, requests, first.corpus, first.seed,
                batch_size=self.settings.batch_size, drop_bos=first.drop_bos,
            )  # fmt: skip
        except torch.cuda.OutOfMemoryError:
            reason = "out of GPU memory: rerun with a smaller --batch-size (or --dtype bfloat16)"
        except UserError as exc:
            if len(cells) > 1:
                slots: dict[tuple[int, int], list[Cell]] = {}
                for c in cells:
                    slots.setdefault((c.samples, c.positions), []).append(c)
                parts = list(slots.values()) if len(slots) > 1 else [[c] for c in cells]
                return [c for part in parts for c in self._compute(part, alone=alone)] + self._compute_apart(later)
            reason = str(exc)
        else:
            unsaved: list[Cell] = []
            for c in cells:
                finetune = (c.organism, c.variant)
                save_pass_record(self.store, c, results[finetune].record)
                try:
                    spec_of(c).save(self.store, c, results[finetune].results, pairs[finetune])
                except UserError as exc:  # the method cannot use what the pass gathered (e.g. too few tokens for NMF)
                    self.fail(c, "method", str(exc))
                    unsaved.append(c)
            done = [c for c in cells if c not in unsaved]
            for c in done:
                self.store.failure(c).unlink(missing_ok=True)
            self.fresh.update(done)
            self.summary.computed += len(done)
            return unsaved + self._compute_apart(later)
        for c in cells:
            self.fail(c, "pass", reason)
        return cells + self._compute_apart(later)

    def _compute_apart(self, cells: list[Cell]) -> list[Cell]:
        """One pass per finetune, each loaded alone (the full finetunes that did not fit beside the others)."""
        groups: dict[Finetune, list[Cell]] = {}
        for c in cells:
            groups.setdefault((c.organism, c.variant), []).append(c)
        return [c for group in groups.values() for c in self._compute(group, alone=True)]

    def frequent_tokens(self, cell: Cell) -> FrequentTokens:
        return self._frequent_of(cell.model, cell.organism, cell.variant, self.reg.finetuned(cell.organism, cell.model, cell.variant))

    def _frequent_of(self, model: str, organism: str, variant: str, ref: FinetunedRef) -> FrequentTokens:
        """Per finetune (variants may come from different places), asked once per run."""
        key = (model, organism, variant)
        if key not in self._frequent:
            model_cfg = self.reg.model(model)
            tokenizer = self._pairs.any_pair.tokenizer if self._pairs.any_pair is not None else load_tokenizer(tokenizer_source(model_cfg, base_source(model_cfg, self.settings.cache_dir)))
            self._frequent[key] = frequent_training_tokens(self.reg.organism(organism), ref, tokenizer, self.settings.cache_dir)
        return self._frequent[key]

    def control(self, cell: Cell) -> ControlTarget | None:
        """The other organism the cell's lists are also graded against, with its own frequent training tokens."""
        name = self.control_name(cell)
        if name is None:
            return None
        finetune = control_finetune(self.reg, name, cell.model)
        frequent = self._frequent_of(cell.model, name, finetune[0], finetune[1]).tokens if finetune else []
        return ControlTarget(self.reg.organism(name), frequent)

    def _choose_scales(self, cells: list[Cell]) -> list[Cell]:
        """The judge picks the patchscope scale each position is read at (stored; kept unless recomputed).
        Returns the cells whose choice failed (listed in the summary; retried by the next run)."""
        failed: list[Cell] = []
        if not cells:
            return failed
        assert self.judge is not None
        chooser = make_scale_chooser(self.judge)
        for cell in cells:
            path = scale_choice_path(self.store, cell, self.judge_id)
            if path.is_file() and cell not in self.fresh and not self.settings.overwrite:
                try:
                    load_scale_choices(self.store, cell, self.judge_id)
                    continue
                except ValueError as exc:
                    console.print(f"[yellow]unreadable scale choice, choosing again[/] {cell.label()}: {exc}")
            spec = spec_of(cell)
            assert isinstance(spec, AdlSpec)  # the readouts that choose a scale are ADL's
            readout = spec.load(self.store, cell)
            assert isinstance(readout, AdlPatchscope)
            try:
                choices = asyncio.run(_choose_all(chooser, readout.delta, self.store.sample_id(self.store.method_dir(cell))))
            except LLMCallError as exc:
                self.summary.failed.append(f"{cell.label()} [patchscope scale choice]: {exc}")
                failed.append(cell)
                continue
            save_scale_choices(self.store, cell, self.judge_id, choices)
        return failed

    def _relevance_stage(self, cells: list[Cell]) -> None:
        todo = [c for c in cells if self.settings.overwrite or not self._relevance_done(c)]
        self.summary.grades_reused += len(cells) - len(todo)
        if not todo:
            return
        assert self.judge is not None
        unchosen = self._choose_scales([c for c in todo if spec_of(c).chooses_scale])
        todo = [c for c in todo if c not in unchosen]
        if not todo:
            return
        # One batch per finetune, not per organism: each variant's lists are graded with, and its
        # trivial_percentage counted against, the frequent tokens of that variant's own training data.
        by_finetune: dict[Finetune, list[Cell]] = {}
        for c in todo:
            by_finetune.setdefault((c.organism, c.variant), []).append(c)
        for group in by_finetune.values():
            self._grade(group)

    def _grade(self, cells: list[Cell]) -> None:
        """Grade the candidate lists of cells of one finetune against its organism's description (all in one batch of requests)."""
        assert self.judge is not None
        organism = self.reg.organism(cells[0].organism)
        per_cell = {c: candidate_lists(self.store, c, self.judge_id) for c in cells}
        flat = [lst for lists in per_cell.values() for lst in lists]
        samples = [s for c, lists in per_cell.items() for s in judge_samples(self.store, c, self.judge_id, lists)]
        frequent = self.frequent_tokens(cells[0])
        control = self.control(cells[0])
        graded = iter(asyncio.run(grade_lists(self.judge, organism, frequent.tokens, flat, trivial_unavailable=frequent.unavailable,
                                              samples=samples, control=control)))
        for c, lists in per_cell.items():
            mine = [next(graded) for _ in lists]
            result = RelevanceResult(judge=self.judge_id, judge_is_offline=self.judge_id.startswith("offline"), cell=c, lists=mine,
                                     control_organism=control.organism.name if control else None)
            write_json(self.store.relevance(c, self.judge_id), result.model_dump())
            failed = [lst for lst in mine if lst.failed]
            self.summary.unlabelled += sum(lst.metrics is not None and unlabelled(lst) is not None for lst in failed)
            for lst in failed:
                self.summary.failed.append(f"{c.label()} [relevance {lst.list_id}]: {lst.failed}")
            self.summary.graded += not failed


async def _choose_all(chooser: ScaleChooser, positions: list[PatchscopePosition], sample: str) -> list[ScaleChoice]:
    async def one(p: PatchscopePosition) -> ScaleChoice:
        best, selected, responses = await chooser.choose(p.scales, f"{sample}|position{p.position}")
        return ScaleChoice(position=p.position, chooser=chooser.id, best_scale=best, selected_tokens=selected, responses=responses)

    return list(await asyncio.gather(*(one(p) for p in positions)))
