"""CONTRIBUTING.md's package map lists every module with the notebooks that import it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "embedlab"
NOTEBOOKS = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))


def modules() -> list[str]:
    """Top-level modules and subpackages of embedlab (``__init__`` is the package itself)."""
    files = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    return sorted(files | packages)


def notebook_usage() -> dict[str, set[str]]:
    """Module -> numbers of the notebooks that import it (or use ``embedlab.<module>``)."""
    names = set(modules())
    use: dict[str, set[str]] = {m: set() for m in names}

    def mark(name: str, nb: str) -> None:
        use[name if name in names else "__init__"].add(nb)

    for path in NOTEBOOKS:
        nb = path.name[:2]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("embedlab"):
                parts = node.module.split(".")
                for alias in node.names if len(parts) == 1 else [None]:
                    mark(parts[1] if alias is None else alias.name, nb)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "embedlab":
                        mark(parts[1] if len(parts) > 1 else "__init__", nb)
            elif isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "embedlab":
                mark(node.attr, nb)
    return use


def map_rows() -> dict[str, str]:
    """Module -> its "Notebooks" cell, from the table in CONTRIBUTING.md."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\| `([\w.]+)` \|[^|]*\|([^|]*)\|$", text, re.MULTILINE)
    }


def cell(numbers: set[str]) -> str:
    every = {p.name[:2] for p in NOTEBOOKS}
    return "all" if numbers == every else ", ".join(sorted(numbers)) or "–"


def test_every_module_is_in_the_map_with_its_notebooks():
    rows, usage = map_rows(), notebook_usage()
    wrong = {m: cell(usage[m]) for m in modules() if rows.get(m) != cell(usage[m])}
    assert wrong == {}, f"update CONTRIBUTING.md's map; expected Notebooks cells: {wrong}"
    assert sorted(rows) == modules(), "the map lists a module that no longer exists"


def test_usage_reads_all_import_forms():
    usage = notebook_usage()
    assert "10" in usage["app"]  # from embedlab.app import ...
    assert "01" in usage["__init__"]  # import embedlab; embedlab.run_line(...)
