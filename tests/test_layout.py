"""House rules of the package's layout, checked so that they stay true.

Modules import each other without circles, not even through an import deferred
into a function or one made only for type checking (a circle makes import order
matter and hides which module owns what); the front end reads a backend's hooks
as declared members, never by probing for them; no module outgrows a reader;
and merge leftovers are not committed.
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


def _imports_of_source(
    name: str, path: Path, source: str, *, lazy: bool = True, typing: bool = False
) -> set[str]:
    """What :func:`_imports` finds in ``source``, the text of module ``name`` at ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                if typing:
                    visit(node.body)
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

    visit(ast.parse(source).body)
    found.discard(name)
    return found


def _imports(name: str, path: Path, *, lazy: bool, typing: bool = False) -> set[str]:
    """The package modules ``name`` imports when it is imported (``lazy``: or when
    its functions run; ``typing``: or for the type checker, under ``if TYPE_CHECKING``)."""
    source = path.read_text(encoding="utf-8")
    return _imports_of_source(name, path, source, lazy=lazy, typing=typing)


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


def test_no_deferred_or_type_only_import_closes_a_circle() -> None:
    # Lazy imports that exist to load something heavy on demand are fine, and
    # so are imports for annotations; the ones that close a circle are not: a
    # lower module that needs to name a higher one's type declares a Protocol
    # of what it uses (``_wakeups.Finished``, ``_anyloop.Waitable``).
    graph = {name: _imports(name, path, lazy=True, typing=True) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_type_only_imports_are_followed() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import _future\n"
    path = PACKAGE / "_probe.py"
    found = {
        typing: _imports_of_source("aioconc._probe", path, source, typing=typing)
        for typing in (False, True)
    }
    assert found == {False: set(), True: {"aioconc._future"}}


# The backend hooks the front end uses.  BackendWorker, LimitBackend and a
# future's Inner declare them (with defaults in WorkerBase): outside the
# backends, code reads them as attributes, so that mypy checks every use and a
# backend that lacks one fails loudly instead of being silently skipped.
HOOKS = frozenset(
    {"start_here", "on_timeout", "held_calls", "waiting", "wait_here", "_timed_dispatch"}
)
BACKENDS = PACKAGE / "_backends"


def _hook_probes(tree: ast.AST) -> list[str]:
    """The ``getattr(x, "<hook>", ...)`` and ``hasattr(x, "<hook>")`` calls in ``tree``."""
    probes = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in HOOKS
        ):
            probes.append(f"{node.lineno}: {ast.unparse(node)}")
    return probes


def test_the_front_end_never_probes_for_a_backend_hook() -> None:
    probes = {
        name: found
        for name, path in MODULES.items()
        if BACKENDS not in path.parents
        and (found := _hook_probes(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert probes == {}, "declare the hook in _backends/_base.py and read it as an attribute"


def test_the_probe_check_finds_a_probe() -> None:
    tree = ast.parse(
        "getattr(worker, 'held_calls', 0)\nhasattr(fut._inner, 'wait_here')\nx.waiting"
    )
    assert len(_hook_probes(tree)) == 2  # reading the attribute is no probe


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
