"""House rules of the package's layout, checked so that they stay true.

Modules import each other without circles (a circle makes import order matter
and hides which module owns what), no module outgrows a reader, and merge
leftovers are not committed.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aioconc"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, *, lazy: bool) -> set[str]:
    """The package modules ``name`` imports when it is imported (``lazy``: or when
    its functions run); imports under ``if TYPE_CHECKING`` never run."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
                found.update(subs)
                if len(subs) < len(node.names) and target in MODULES:
                    found.add(target)  # names from the module itself, not submodules
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in MODULES)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not lazy:
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                    visit(children)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            connect(v)
    return groups


def test_the_modules_import_each_other_without_circles() -> None:
    graph = {name: _imports(name, path, lazy=False) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_the_core_defers_no_import_to_break_a_circle() -> None:
    # Lazy imports that exist to load something heavy on demand are fine; the
    # ones that close a circle are not.  The limits package defines its limit
    # types and the set that combines them in separate modules that refer to
    # each other at call time; that group is the one allowed.
    graph = {name: _imports(name, path, lazy=True) for name, path in MODULES.items()}
    groups = [g for g in _cycles(graph) if not all(m.startswith("aioconc.limits.") for m in g)]
    assert groups == []


def test_the_check_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_outgrows_a_reader() -> None:
    sizes = {name: path.read_text(encoding="utf-8").count("\n") for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}, "split by responsibility"


def test_no_merge_leftovers_are_committed() -> None:
    try:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=PACKAGE.parent, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    leftovers = [f for f in tracked if f.endswith((".orig", ".rej"))]
    assert leftovers == []
