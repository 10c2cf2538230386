"""The ONE place that knows where every artifact lives. Writers and readers both call these paths.

Layout under the results root (every parameter that changes a result is in its path):

  <model>/<organism>/<variant>/<corpus>/seed<seed>/   (<corpus>: hub id, or file name + content hash)
      logitdiff/S<S>_T<T>_K<K>[_nobos]/
          pass_record.json                       run record of the pass (params, corpus rows, timings)
          orderings.json                         both orderings (top entries)
          counters.safetensors                   count_pos, count_neg, sum_diff, npos
          relevance/<judge>.json                 graded lists + raw judge responses
          agent/<agent>_b<budget>__<grader>/run<r>.json   agent transcript + grades
          FAILED.json                            why the cell failed (removed on success)
      logitdiff/S<S>_T<T>_K<K>[_nobos]_nmf<topics>[_binary][_orth<w>]/
          nmf.json, pass_record.json, relevance/…, agent/…   NMF topics of the top-K matrix (--orderings …,nmf)
      adl/S<S>_T<T>_L<layer>[_nobos]/
          lens.json, vectors.safetensors, relevance/…, agent/…, FAILED.json
          drill_lens.json                        δ's lens at every position and a few layers (agent drill-down)
      adl/S<S>_T<T>_L<layer>[_nobos]_patchscope/
          patchscope.json (top tokens per position and scale), vectors.safetensors, drill_lens.json,
          scale_choice/<judge>.json (the scale each position is read at), relevance/…, agent/…
      blackbox/<agent>_b<budget>__<grader>/run<r>.json  baseline agent (no method output)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from logitdiff.core.cell import Cell
from logitdiff.core.names import slug
from logitdiff.engine.corpus import local_corpus_path, looks_local
from logitdiff.results.corpus_id import corpus_folder_name, folders_named_for, legacy_folder_name


def corpus_folder(corpus: str, parent: Path, cache_dir: Path | None) -> str:
    """The corpus part of a pass folder under `parent` (<results>/<model>/<organism>/<variant>).

    A hub dataset: its id. A local file: its name plus a hash of its content, so copies of the file
    anywhere find the same results. Stored results are found under older names too: the path-hash
    name this file had on this machine, or, when the file itself is absent here (results copied
    without it), the one stored folder for a file of that name.
    """
    if not looks_local(corpus):
        return slug(corpus)
    path = local_corpus_path(corpus)
    if path.is_file():
        name = corpus_folder_name(path, cache_dir)
        legacy = legacy_folder_name(path)
        if not (parent / name).is_dir() and (parent / legacy).is_dir():
            return legacy
        return name
    stored = folders_named_for(path.name, parent)
    return stored[0].name if len(stored) == 1 else slug(path.name)


@dataclass(frozen=True)
class AgentKey:
    """Everything besides the cell that changes an agent result."""

    agent_id: str
    grader_id: str
    budget: int

    def folder(self) -> str:
        return f"{slug(self.agent_id)}_b{self.budget}__{slug(self.grader_id)}"


@dataclass(frozen=True)
class ResultsStore:
    root: Path
    # The method result's folder under a pass folder, e.g. 'logitdiff/S1000_T30_K100': each method names
    # its own (logitdiff.registry), so the store needs no knowledge of methods.
    method_folder: Callable[[Cell], str] = field(kw_only=True, compare=False)
    cache_dir: Path | None = None  # where corpus digests are kept between runs (None: hashed once per process)
    # (model, organism, variant, corpus) -> corpus folder name: resolved once per store.
    _corpus_folders: dict[tuple[str, str, str, str], str] = field(default_factory=dict, compare=False, repr=False)

    def pass_dir(self, cell: Cell) -> Path:
        parent = self.root / cell.model / cell.organism / cell.variant
        key = (cell.model, cell.organism, cell.variant, cell.corpus)
        if key not in self._corpus_folders:
            self._corpus_folders[key] = corpus_folder(cell.corpus, parent, self.cache_dir)
        return parent / self._corpus_folders[key] / f"seed{cell.seed}"

    def pass_record(self, cell: Cell) -> Path:
        """Run record of the engine pass that produced this cell's method result."""
        return self.method_dir(cell) / "pass_record.json"

    def method_dir(self, cell: Cell) -> Path:
        """The folder of the cell's method result; the method registry names it."""
        return self.pass_dir(cell) / self.method_folder(cell)

    def relevance(self, cell: Cell, judge_id: str) -> Path:
        return self.method_dir(cell) / "relevance" / f"{slug(judge_id)}.json"

    def agent_run(self, cell: Cell, agent: AgentKey, run: int) -> Path:
        return self.method_dir(cell) / "agent" / agent.folder() / f"run{run}.json"

    def blackbox_run(self, cell: Cell, agent: AgentKey, run: int) -> Path:
        return self.pass_dir(cell) / "blackbox" / agent.folder() / f"run{run}.json"

    def failure(self, cell: Cell) -> Path:
        return self.method_dir(cell) / "FAILED.json"

    def sample_id(self, path: Path) -> str:
        """The identity of the LLM samples stored at `path` (a cell's folder for its judge requests, an
        agent folder for its runs): the path under the root, which names every parameter and the seed.
        Two experiments' cells with one stored result are one sample; the results moved elsewhere keep it."""
        return path.relative_to(self.root).as_posix()

    def has_agent_results(self, cells: list[Cell], agent: AgentKey) -> bool:
        """Whether any cell of a grid has agent runs stored (mode plotting draws them if so)."""
        return any(self.agent_run(c, agent, 0).parent.is_dir() for c in cells)
