"""House rules of the package's layout, checked so that they stay true.

Modules import each other without circles, not even through an import deferred
into a function or one made only for type checking (a circle makes import order
matter and hides which module owns what); the layers import one way (front end
-> middleware -> backends -> runtime): no backend imports the middleware, and
the child side of process mode, which worker processes load by path, imports
nothing of aioconc beyond itself and the codec; the front end reads a backend's
hooks as declared members, never by probing for them; no module outgrows a
reader; and merge leftovers are not committed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aioconc"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
BACKENDS = "aioconc._backends"
CHILD_SIDE = "aioconc._backends.process.child"
CODEC = "aioconc._codec"
MIDDLEWARE = ("aioconc.middleware", "aioconc._chain")
MAX_BACKEND_MODULES = 10


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
    {"start_inline", "on_timeout", "held_calls", "waiting", "read_while_waiting", "_timed_dispatch"}
)
BACKENDS_DIR = PACKAGE / "_backends"


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
        if BACKENDS_DIR not in path.parents
        and (found := _hook_probes(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert probes == {}, "declare the hook in _backends/_base.py and read it as an attribute"


def test_the_probe_check_finds_a_probe() -> None:
    tree = ast.parse(
        "getattr(worker, 'held_calls', 0)\nhasattr(fut._inner, 'read_while_waiting')\nx.waiting"
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


# ---------------------------------------------------------------------------
# The layers
# ---------------------------------------------------------------------------


def _every_import(name: str, source: str) -> list[tuple[str, bool]]:
    """Every module the source of module ``name`` may load, as (absolute name,
    written as a relative import): imports at the top, inside functions and
    under ``if TYPE_CHECKING``, and constant names given to ``import_module``.
    A ``from`` import counts its module and the submodules it names."""
    is_package = name in MODULES and MODULES[name].name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, False) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, bool(node.level)))
            found.extend(
                (f"{target}.{alias.name}", bool(node.level))
                for alias in node.names
                if f"{target}.{alias.name}" in MODULES
            )
        elif isinstance(node, ast.Call) and (loaded := _loaded_by_name(node)) is not None:
            found.append((loaded, False))
    return found


def _loaded_by_name(call: ast.Call) -> str | None:
    """The module an ``import_module("constant")`` call loads, or None for any other call."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = call.args[0] if call.args else None
    if name == "import_module" and isinstance(first, ast.Constant):
        return str(first.value)
    return None


def _top_names(found: list[tuple[str, bool]]) -> set[str]:
    return {name.partition(".")[0] for name, _ in found}


def _source(name: str) -> str:
    return MODULES[name].read_text(encoding="utf-8")


def _is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _middleware_imports(modules: dict[str, str]) -> dict[str, list[str]]:
    """For each module (name -> source), the middleware modules it imports."""
    found: dict[str, list[str]] = {}
    for name, source in modules.items():
        imported = {
            target
            for target, _ in _every_import(name, source)
            if any(_is_within(target, layer) for layer in MIDDLEWARE)
        }
        if imported:
            found[name] = sorted(imported)
    return found


# What the child side may load beyond the standard library, cloudpickle, each
# other and the codec, each on purpose (module, what it loads):
CHILD_MAY_LOAD = {
    # The fork server preloads aioconc (a failed import leaves it cold) so that
    # forked workers start warm; a spawned worker never runs this.
    ("aioconc._backends.process.child._child", "aioconc"),
    # Only a caller that registered context variables sends their values, and
    # such a caller uses aioconc: the child sets them with aioconc's own _carry.
    ("aioconc._backends.process.child._child", "aioconc._carry"),
}


def _child_side_strays(modules: dict[str, str]) -> dict[str, list[str]]:
    """For each child-side module (name -> source), what it loads that a worker
    process cannot load by path: anything outside the standard library,
    cloudpickle, the child side and the codec, and any absolute import of
    aioconc (in a child it would import aioconc itself)."""
    strays: dict[str, list[str]] = {}
    for name, source in modules.items():
        bad = set()
        for imported, relative in _every_import(name, source):
            top = imported.partition(".")[0]
            if (name, imported) in CHILD_MAY_LOAD or imported == "__future__":
                continue
            if top == "aioconc":
                ours = _is_within(imported, CHILD_SIDE) or imported == CODEC
                if not (ours and relative):
                    bad.add(imported)
            elif top not in sys.stdlib_module_names and top != "cloudpickle":
                bad.add(imported)
        if bad:
            strays[name] = sorted(bad)
    return strays


def test_no_backend_imports_the_middleware() -> None:
    # The middleware wraps the backends; a backend reaching up into it (even
    # lazily, or for a type) ties the layers into one.
    backends = {name: _source(name) for name in MODULES if _is_within(name, BACKENDS)}
    assert _middleware_imports(backends) == {}


def test_the_child_side_loads_nothing_of_aioconc_but_itself_and_the_codec() -> None:
    child_side = {name: _source(name) for name in MODULES if _is_within(name, CHILD_SIDE)}
    assert len(child_side) >= 4  # the package, _child, _channel and _wire
    assert _child_side_strays(child_side) == {}
    # Its __init__ runs in the parent only, and must not pull anything in.
    assert _every_import(CHILD_SIDE, _source(CHILD_SIDE)) == []


def test_the_codec_keeps_the_child_sides_rule() -> None:
    # Worker processes load it by path too: only the standard library when it
    # is loaded, and msgpack inside what a msgpack worker calls.
    source = _source(CODEC)
    stdlib = set(sys.stdlib_module_names)
    assert _top_names(_every_import(CODEC, source)) - stdlib <= {"msgpack"}
    top = [n for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert _top_names(_every_import(CODEC, "\n".join(ast.unparse(n) for n in top))) <= stdlib


def test_the_import_checks_see_lazy_and_type_checking_imports() -> None:
    base = "aioconc._backends._base"
    lazy = "def f():\n    from ..middleware import _retry\n"
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .._chain import Stage\n"
    dynamic = "import importlib\nimportlib.import_module('aioconc.middleware._queue')\n"
    assert _middleware_imports({base: lazy, "aioconc._backends._sync": typed}) == {
        base: ["aioconc.middleware", "aioconc.middleware._retry"],
        "aioconc._backends._sync": ["aioconc._chain"],
    }
    assert _middleware_imports({base: dynamic}) == {base: ["aioconc.middleware._queue"]}
    wire = f"{CHILD_SIDE}._wire"
    assert _child_side_strays(
        {wire: "def f():\n    import aioconc._codec\n    from ... import _base\n"}
    ) == {wire: ["aioconc._backends", "aioconc._backends._base", "aioconc._codec"]}
    assert (
        _child_side_strays({wire: "from . import _channel\nfrom ...._codec import Codec\n"}) == {}
    )


def test_the_backends_package_holds_at_most_ten_modules() -> None:
    # The in-process modes are one module each; a family of modules (process,
    # Ray) gets a subpackage of its own rather than more files here.
    flat = sorted(p.name for p in (PACKAGE / "_backends").glob("*.py"))
    assert len(flat) <= MAX_BACKEND_MODULES, flat


ROOT = PACKAGE.parent


def _unnamed_in_architecture(text: str) -> list[str]:
    """The modules of ``aioconc/`` that ``text`` never names: by file name (``_heap.py``),
    a subpackage's modules with their folder named too, a subpackage by its folder."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        folders = relative.parent.parts
        named = all(f"{folder}/" in text for folder in folders)
        if path.name != "__init__.py" or not folders:
            named = named and path.name in text
        if not named:
            missing.append(relative.as_posix())
    return missing


def test_the_architecture_page_names_every_module() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert _unnamed_in_architecture(text) == [], "describe the new module in ARCHITECTURE.md"


def test_the_architecture_check_finds_an_unnamed_module() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert _unnamed_in_architecture(text.replace("_heap.py", "-")) == ["_heap.py"]


def test_the_benchmarks_are_not_in_the_package() -> None:
    # They live in the checkout's benchmarks/ (python -m benchmarks), not in the wheel.
    assert not (PACKAGE / "bench").exists()
    assert (ROOT / "benchmarks" / "__main__.py").is_file()


# The layers, top to bottom (ARCHITECTURE.md): a module may import its own
# layer and the ones below it, never one above, not even lazily or for types.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "front end",
        (
            "aioconc",
            "aioconc.__main__",
            "aioconc._demo",
            "aioconc._worker",
            "aioconc._proxy",
            "aioconc._pool",
            "aioconc._handle",
            "aioconc._balance",
            "aioconc.task",
            "aioconc.direct",
            "aioconc._wait",
            "aioconc.progress",
            "aioconc._timer",
            "aioconc.testing",
        ),
    ),
    ("middleware", ("aioconc.middleware", "aioconc._chain")),
    ("backends", ("aioconc._backends",)),
    (
        "limits, options and retry policies",
        ("aioconc.limits", "aioconc._options", "aioconc.config", "aioconc._retrying"),
    ),
]
# The one import that goes up on purpose.
UPWARD_ON_PURPOSE = {
    # The fork server imports the whole package once, so forked workers start warm.
    "aioconc._backends.process.child._child -> aioconc",
}


def _layer_of(name: str) -> int:
    """The index of ``name``'s layer in LAYERS; the future and runtime are below them all."""
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or (p != "aioconc" and name.startswith(p + ".")) for p in prefixes):
            return index
    return len(LAYERS)


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if _layer_of(target) < _layer_of(name)
    )


def test_the_layers_import_one_way() -> None:
    graph = {name: _imports(name, path, lazy=True, typing=True) for name, path in MODULES.items()}
    assert [edge for edge in _upward_imports(graph) if edge not in UPWARD_ON_PURPOSE] == []


def test_the_layer_check_finds_an_upward_import() -> None:
    graph = {"aioconc._future": {"aioconc._proxy"}, "aioconc._proxy": {"aioconc._future"}}
    assert _upward_imports(graph) == ["aioconc._future -> aioconc._proxy"]
