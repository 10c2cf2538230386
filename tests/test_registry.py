"""The method registry: every layer outside it dispatches through a method's spec, never on its name."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

from logitdiff.registry import REGISTERED, spec_named
from testkit.source_tree import write_package
from testkit.tiny_experiment import TinySetup

SRC = Path(__file__).resolve().parents[1] / "src"
NAMES = frozenset({s.method for s in REGISTERED} | {s.readout for s in REGISTERED} | {s.label for s in REGISTERED})


def _names_a_method(node: ast.AST, names: frozenset[str]) -> bool:
    """A string constant that names a method, readout or label, alone or in a literal tuple/list/set."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value in names
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_method(e, names) for e in node.elts)
    return False


def name_branches(src: Path, package: str, names: frozenset[str], exempt: str = "registry") -> list[str]:
    """Places outside `package.exempt` that branch on a method or readout name: a comparison or
    membership test with the name, a dict keyed by it (a lookup table is a branch), a match case on it."""
    found = []
    for path in sorted((src / package).rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith(f"{package}/{exempt}/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                hit = any(_names_a_method(o, names) for o in (node.left, *node.comparators))
            elif isinstance(node, ast.Dict):
                hit = any(k is not None and _names_a_method(k, names) for k in node.keys)
            elif isinstance(node, ast.MatchValue):
                hit = _names_a_method(node.value, names)
            else:
                continue
            if hit:
                found.append(f"{rel}:{getattr(node, 'lineno', '?')}")
    return found


def test_no_layer_outside_the_registry_branches_on_a_method_or_readout_name() -> None:
    assert {"logitdiff", "adl", "lens", "patchscope", "adl-patchscope"} <= NAMES
    assert name_branches(SRC, "logitdiff", NAMES) == []


def test_the_check_finds_comparisons_memberships_tables_and_match_cases(tmp_path: Path) -> None:
    src = write_package(tmp_path, {
        "registry/specs.py": "def f(m):\n    return m == 'adl'\n",  # the registry may
        "report/a.py": "def f(cell):\n    return cell.method == 'adl'\n",
        "report/b.py": "def f(m):\n    return m not in ('x', 'logitdiff')\n",
        "report/c.py": "LABELS = {'patchscope': 'P'}\n",
        "report/d.py": "def f(m):\n    match m:\n        case 'lens':\n            return 1\n",
        "report/e.py": "def f(m, known):\n    return m in known and m != 'both'\n",  # not a method name: fine
    })  # fmt: skip
    assert name_branches(src, "pkg", NAMES) == ["pkg/report/a.py:2", "pkg/report/b.py:2", "pkg/report/c.py:1", "pkg/report/d.py:3"]


def test_every_spec_has_a_distinct_label_and_folder() -> None:
    from logitdiff.core.cell import Cell

    cell = {"index": 0, "experiment": "e", "model": "m", "organism": "o", "variant": "v", "corpus": "c", "seed": 1, "samples": 10,
            "positions": 30, "top_k": 100, "adl_layer": 0.5, "swept": "top_k", "value": 100}
    folders = [s.folder(Cell(**cell, method=s.method, readout=s.readout)) for s in REGISTERED]
    assert folders == ["logitdiff/S10_T30_K100", "logitdiff/S10_T30_K100_nmf3", "adl/S10_T30_L0.5", "adl/S10_T30_L0.5_patchscope"]
    assert [spec_named(s.label) for s in REGISTERED] == list(REGISTERED)
    assert [Cell(**cell, method=s.method, readout=s.readout).method_label for s in REGISTERED] == [s.label for s in REGISTERED]


STORED = Path(__file__).parent / "data" / "results_before_registry"
# The commands that wrote STORED with the code before the method registry (LogitDiff, both ADL readouts).
STORED_RUNS = (["mix-ratio", "--values", "default", "--adl-readout", "both"], ["topk-depth", "--values", "5,10"])


def test_results_stored_before_the_registry_are_reused_without_recomputation(tiny: TinySetup, tmp_path: Path) -> None:
    """A copy of results written by the code before the registry: rerunning their commands computes,
    regrades and rewrites nothing (every stored file keeps its bytes and its modification time)."""
    results = tmp_path / "results"
    shutil.copytree(STORED, results)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.rglob("*") if p.is_file()}
    for args in STORED_RUNS:
        proc = subprocess.run(
            ["logitdiff", *args, "--model", "tiny_llama", "--organism", "tiny_cake", "--mode", "diffing", "--seeds", "42",
             "--samples", "8", "--positions", "10", "--results-dir", str(results), "--output-dir", str(tmp_path / "out")],
            env=tiny.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "engine pass" not in proc.stderr and "regrading" not in proc.stderr, proc.stderr[-2000:]
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.rglob("*") if p.is_file()}
    assert after == before
    assert len(before) == 23
