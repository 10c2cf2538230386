"""Results travel: a results folder copied to another path or read from another clone is found by
`--mode plotting` and `status`, and a rerun there recomputes nothing. Corpora are identified by content;
records keep the corpus path as the config gave it. Folders of the old path-hash naming are found too."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from logitdiff.results.corpus_id import corpus_folder_name, legacy_folder_name
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, build_tiny_setup

pytestmark = pytest.mark.slow  # several real tiny runs of the CLI

CORPUS = "data/corpus.jsonl"  # relative to the clone's root, as a bundled corpus is
GRID = ["--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--seeds", "42", "--values", "5,10", "--samples", "4", "--positions", "6", "--judge", "offline"]


@dataclass(frozen=True)
class Clone:
    root: Path
    env: dict[str, str]

    def run(self, *args: str, results: Path | None = None, expect: int = 0) -> subprocess.CompletedProcess[str]:
        extra = ["--results-dir", str(results)] if results else []
        done = subprocess.run(["logitdiff", *args, *extra], env=self.env, cwd=self.root, capture_output=True, text=True, timeout=600)
        assert done.returncode == expect, done.stdout[-2000:] + done.stderr[-3000:]
        return done


def make_clone(root: Path, tiny_configs: Path, corpus: Path, env: dict[str, str]) -> Clone:
    """A checkout-like folder: its own configs naming the corpus relative to its root, and the corpus."""
    shutil.copytree(tiny_configs, root / "configs")
    (root / "data").mkdir()
    shutil.copy(corpus, root / CORPUS)
    org_file = root / "configs" / "organisms" / f"{TINY_ORGANISM}.yaml"
    org = yaml.safe_load(org_file.read_text())
    org["default_corpus"] = {TINY_MODEL: CORPUS}
    org_file.write_text(yaml.safe_dump(org, sort_keys=False))
    return Clone(root, {**env, "LOGITDIFF_HOME": str(root), "LOGITDIFF_CONFIGS": str(root / "configs")})


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Clone, Path]:
    """Clone A with a finished tiny topk-depth run in A/results; returns (A, the tiny set-up's root)."""
    base = tmp_path_factory.mktemp("portable")
    setup = build_tiny_setup(base / "tiny")
    a = make_clone(base / "clone_a", setup.configs, setup.corpus, setup.env)
    a.run("topk-depth", *GRID, "--mode", "diffing")
    return a, base


def check_reused(clone: Clone, results: Path) -> None:
    status = clone.run("status", "topk-depth", *GRID, results=results)
    assert "done: 2" in status.stdout and "missing" not in status.stdout, status.stdout
    before = snapshot(results)
    out = results.parent / "outputs_check"
    clone.run("topk-depth", *GRID, "--mode", "plotting", "--output-dir", str(out), results=results)
    folder = out / "topk_depth" / TINY_MODEL / TINY_ORGANISM
    records = json.loads((folder / "token_relevance_results.json").read_text())
    assert {(r["value"], r["ordering"]) for r in records} == {(v, o) for v in (5, 10) for o in ("top_k_occurring", "fraction_positive_diff")}
    assert {r["corpus"] for r in records} == {CORPUS}  # as the config wrote it, no machine path
    assert json.loads((folder / "missing.json").read_text()) == []
    rerun = clone.run("topk-depth", *GRID, "--mode", "diffing", "--output-dir", str(out), results=results)
    assert snapshot(results) == before, rerun.stderr[-2000:]  # nothing recomputed, regraded or rewritten


def test_results_copied_to_another_clone_are_reused(first: tuple[Clone, Path]) -> None:
    a, base = first
    b = make_clone(base / "clone_b", a.root / "configs", a.root / CORPUS, a.env)
    shutil.copytree(a.root / "results", b.root / "results")
    check_reused(b, b.root / "results")


def test_results_copied_to_another_path_are_reused(first: tuple[Clone, Path]) -> None:
    a, base = first
    elsewhere = base / "elsewhere" / "results"
    shutil.copytree(a.root / "results", elsewhere)
    check_reused(a, elsewhere)


def test_records_name_the_corpus_as_given_and_folders_by_content(first: tuple[Clone, Path]) -> None:
    a, _ = first
    variant_dir = a.root / "results" / TINY_MODEL / TINY_ORGANISM / "mix1-0p5"
    assert [p.name for p in variant_dir.iterdir()] == [corpus_folder_name(a.root / CORPUS)]
    records = list((a.root / "results").rglob("pass_record.json"))
    assert records and all(json.loads(p.read_text())["corpus"] == CORPUS for p in records)
    assert str(a.root) not in "".join(p.read_text() for p in (a.root / "results").rglob("*.json"))


def test_old_path_hash_folders_are_found(first: tuple[Clone, Path]) -> None:
    a, base = first
    old = base / "old_clone"
    shutil.copytree(a.root, old, ignore=shutil.ignore_patterns("outputs*"))
    c = Clone(old, {**a.env, "LOGITDIFF_HOME": str(old), "LOGITDIFF_CONFIGS": str(old / "configs")})
    variant_dir = old / "results" / TINY_MODEL / TINY_ORGANISM / "mix1-0p5"
    (variant_dir / corpus_folder_name(old / CORPUS)).rename(variant_dir / legacy_folder_name(old / CORPUS))
    check_reused(c, old / "results")
    assert [p.name for p in variant_dir.iterdir()] == [legacy_folder_name(old / CORPUS)]


def test_results_without_their_corpus_file_still_plot(first: tuple[Clone, Path]) -> None:
    a, base = first
    bare = make_clone(base / "clone_bare", a.root / "configs", a.root / CORPUS, a.env)
    (bare.root / CORPUS).unlink()
    shutil.copytree(a.root / "results", bare.root / "results")
    status = bare.run("status", "topk-depth", *GRID, results=bare.root / "results")
    assert "done: 2" in status.stdout, status.stdout
    bare.run("topk-depth", *GRID, "--mode", "plotting", "--output-dir", str(base / "bare_out"), results=bare.root / "results")
    records = json.loads((base / "bare_out" / "topk_depth" / TINY_MODEL / TINY_ORGANISM / "token_relevance_results.json").read_text())
    assert len(records) == 4
    done = bare.run("topk-depth", *GRID, "--mode", "diffing", results=bare.root / "results", expect=2)
    assert "corpus file data/corpus.jsonl does not exist" in done.stderr
