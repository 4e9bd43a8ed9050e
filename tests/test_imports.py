"""The module import graph of ``src/embedlab``: no cycles, and loaders that only load.

The graph is read from the source with ``ast``, so an import inside a function counts
as much as one at the top: a cycle that only closes when a function runs is still a
cycle a reader has to untangle. An edge goes from a module to each ``embedlab`` module
it names (``import embedlab.x``, ``from embedlab.x import y``, ``from embedlab import x``,
``from . import x``, ``from .x import y``); ``from pkg import name`` where ``name`` is
not a submodule is an edge to ``pkg``. The implicit import of a parent package that
Python performs before any submodule is not an edge: every submodule has it.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "embedlab"

Graph = dict[str, set[str]]


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every absolute dotted name the import statements of ``source`` ask for, anywhere.

    ``from a.b import c`` gives ``a.b.c``, which :func:`resolve` maps to the submodule
    ``a.b.c`` if there is one, else to ``a.b``. Relative imports are resolved against
    ``module``.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, module, is_package)
            names |= {base if a.name == "*" else f"{base}.{a.name}" for a in node.names}
    return names


def _absolute(target: str | None, level: int, module: str, is_package: bool) -> str:
    """The absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    here = module.split(".") if is_package else module.split(".")[:-1]
    anchor = here[: len(here) - (level - 1)]
    return ".".join(anchor + ([target] if target else []))


def resolve(name: str, modules: set[str]) -> str | None:
    """The longest known module that ``name`` is, or lies in (None: not ours)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(src: Path = SRC, package: str = PACKAGE) -> Graph:
    """``{module: modules it imports}`` over the package, self-imports left out."""
    files = module_files(src, package)
    known = set(files)
    graph: Graph = {}
    for module, path in files.items():
        names = imported_names(path.read_text(encoding="utf-8"), module, path.stem == "__init__")
        graph[module] = _edges(module, names, known)
    return graph


def _edges(module: str, names: set[str], known: set[str]) -> set[str]:
    """The known modules ``names`` resolve to, other than ``module`` itself."""
    targets = {resolve(n, known) for n in names}
    return {t for t in targets if t is not None and t != module}


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def reachable(graph: Graph, start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# ------------------------------------------------------------------ the walker itself


def test_walker_sees_every_import_form():
    source = (
        "import embedlab.a\n"
        "from embedlab.b import thing\n"
        "from embedlab import c\n"
        "from . import d\n"
        "from .e import f\n"
        "def later():\n"
        "    from embedlab.g import h\n"
        "    import numpy\n"
    )
    ours = {"embedlab.a", "embedlab.b", "embedlab.c", "embedlab.g"}
    inner = {"embedlab.pkg.d", "embedlab.pkg.e"}
    known = ours | inner | {"embedlab", "embedlab.pkg"}
    names = imported_names(source, "embedlab.pkg", is_package=True)
    # `thing` and `h` are not modules: their edges go to the module that holds them
    assert _edges("embedlab.pkg", names, known) == ours | inner


def test_relative_imports_resolve_from_a_plain_module():
    names = imported_names("from . import d\nfrom ..x import y\n", "embedlab.sub.mod", False)
    assert names == {"embedlab.sub.d", "embedlab.x.y"}


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


# ------------------------------------------------------------------- the package graph


def test_walker_finds_the_package_modules():
    graph = import_graph()
    assert {"embedlab", "embedlab.models", "embedlab.offline.runtime"} <= set(graph)
    assert "embedlab.config" in graph["embedlab.models"]  # sanity: edges are found


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("forbidden", ["embedlab.train", "embedlab.data"])
def test_loading_a_model_pulls_in_no_datasets_or_training(forbidden):
    graph = import_graph()
    assert forbidden not in reachable(graph, "embedlab.models")


OFFLINE_RUNTIME = {"embedlab.offline", "embedlab.offline.runtime"}


def offline_builders() -> set[str]:
    """Every module of ``embedlab.offline`` but its runtime: build tooling, by definition."""
    return {m for m in module_files() if m.startswith("embedlab.offline.")} - OFFLINE_RUNTIME


def test_offline_runtime_reaches_no_builder():
    graph, builders = import_graph(), offline_builders()
    assert {"embedlab.offline.builder", "embedlab.offline.e5"} <= builders
    for light in (*sorted(OFFLINE_RUNTIME), "embedlab.models", "embedlab"):
        reached = sorted(reachable(graph, light) & builders)
        assert not reached, f"{light} imports build tooling: {reached}"


def test_importing_the_runtime_loads_no_build_tooling():
    """In a fresh interpreter: what a model load imports holds no builder or converter."""
    code = (
        "import sys, embedlab, embedlab.offline, embedlab.models\n"
        "from embedlab.offline import require_model, weights_note\n"
        "watched = sys.argv[1:] + ['sentencepiece', 'tokenizers', 'transformers', 'torch']\n"
        "print(sorted(m for m in watched if m in sys.modules))\n"
    )
    cmd = [sys.executable, "-c", code, *sorted(offline_builders())]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_console_scripts_point_at_functions():
    """``pyproject.toml``'s entry points follow the modules they name when those move."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func, None)), f"{name}={target}"
