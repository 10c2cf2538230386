"""The package's layers (docs/ARCHITECTURE.md): every import goes down the stack, and no modules import
each other in a circle. Imports inside functions and under TYPE_CHECKING count too."""

from __future__ import annotations

import ast
from pathlib import Path

from testkit.source_tree import write_package

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top; a part may import only parts listed before it (and itself).
LAYERS = ("core", "config", "llm", "engine", "methods", "results", "judge", "agent", "registry", "report", "experiments", "organism", "cli")


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, src: Path) -> list[str]:
    """Absolute names of the package's modules that `path` imports (relative imports resolved)."""
    package = _module_name(path, src).split(".")[0]
    here = _module_name(path, src).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1]) + ("." + node.module if node.module else "") if node.level else node.module or ""
            if base.split(".")[0] != package:
                continue
            for alias in node.names:  # `from pkg.sub import module` imports a module, not a name
                candidate = f"{base}.{alias.name}"
                is_module = (src / Path(*candidate.split("."))).with_suffix(".py").is_file() or (src / Path(*candidate.split("."))).is_dir()
                found.append(candidate if is_module else base)
    return found


def _part(module: str) -> str:
    """'logitdiff.results.store' -> 'results'; 'logitdiff.cli' -> 'cli'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_problems(src: Path, package: str, layers: tuple[str, ...]) -> list[str]:
    """Upward imports, imports of parts outside `layers`, and circles between modules."""
    graph: dict[str, set[str]] = {}
    problems: list[str] = []
    for path in sorted((src / package).rglob("*.py")):
        me = _module_name(path, src)
        graph[me] = set()
        for target in _imports(path, src):
            if target == package:
                problems.append(f"{me} imports the package root {package}")
                continue
            graph[me].add(target)
            mine, theirs = _part(me), _part(target)
            if mine not in layers or theirs not in layers:
                problems.append(f"{me} -> {target}: {mine if mine not in layers else theirs!r} is in no layer")
            elif layers.index(theirs) > layers.index(mine):
                problems.append(f"{me} -> {target}: {mine} may not import {theirs} (a higher layer)")
    problems += [f"circle: {' -> '.join(c)}" for c in _circles(graph)]
    return problems


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return circles


def test_logitdiff_imports_only_downward_and_without_circles() -> None:
    assert (SRC / "logitdiff" / "core").is_dir()
    assert import_problems(SRC, "logitdiff", LAYERS) == []


def test_the_check_finds_an_upward_import_hidden_in_a_function(tmp_path: Path) -> None:
    src = write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high.b import g\n    return g\n",
        "high/__init__.py": "",
        "high/b.py": "from pkg.low.a import f\ndef g():\n    return f\n",
    })
    problems = import_problems(src, "pkg", ("low", "high"))
    assert "pkg.low.a -> pkg.high.b: low may not import high (a higher layer)" in problems
    assert any(p.startswith("circle: ") and "pkg.low.a" in p and "pkg.high.b" in p for p in problems)


def test_the_check_finds_a_circle_inside_one_layer_behind_type_checking(tmp_path: Path) -> None:
    src = write_package(tmp_path, {
        "__init__.py": "",
        "exp/__init__.py": "",
        "exp/runner.py": "from pkg.exp.stages import Stages\n",
        "exp/stages.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.exp.runner import Summary\n",
        "exp/ok.py": "from . import stages\n",
    })
    problems = import_problems(src, "pkg", ("exp",))
    assert problems == ["circle: pkg.exp.stages -> pkg.exp.runner -> pkg.exp.stages"]


def test_the_check_accepts_downward_imports(tmp_path: Path) -> None:
    src = write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "X = 1\n",
        "high/__init__.py": "from pkg.low import a\n",
        "high/b.py": "from pkg.low.a import X\nfrom .c import Y\n",
        "high/c.py": "Y = 2\n",
    })
    assert import_problems(src, "pkg", ("low", "high")) == []
