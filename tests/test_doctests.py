"""The docstring examples: every one runs under `make unit`, and none loads heavy libraries."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "embedlab"
# Loading any of these means a model, a dataset or the network: not for a doctest.
HEAVY = ("transformers", "sentence_transformers", "datasets", "huggingface_hub", "requests")


def doctest_modules() -> list[Path]:
    """The files of the Makefile's DOCTEST_MODULES (continuation lines joined)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = re.search(r"^DOCTEST_MODULES :=(.*)$", text, re.MULTILINE)
    assert line, "the Makefile defines no DOCTEST_MODULES"
    return [ROOT / p for p in line.group(1).split()]


def has_examples(path: Path) -> bool:
    """True when a docstring in ``path`` holds a ``>>>`` example."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if ">>>" in (ast.get_docstring(node) or ""):
                return True
    return False


def test_every_module_with_examples_is_doctested():
    listed = set(doctest_modules())
    assert all(p.exists() for p in listed), sorted(str(p) for p in listed if not p.exists())
    unlisted = [p.relative_to(ROOT) for p in PACKAGE.rglob("*.py") if has_examples(p)]
    assert [p for p in unlisted if ROOT / p not in listed] == []


def test_makefile_unit_skips_slow_tests_and_test_runs_them():
    text = (ROOT / "Makefile").read_text()
    recipe = {
        m.group(1): m.group(2) for m in re.finditer(r"^([\w-]+):[^\n]*\n\t([^\n]*)", text, re.M)
    }
    assert '-m "not slow"' in recipe["unit"] and "--doctest-modules" in recipe["unit"]
    assert "slow" not in recipe["unit-all"] and "--doctest-modules" in recipe["unit-all"]
    assert re.search(r"^test: lint unit-all nbval$", text, re.MULTILINE)


def test_doctest_modules_load_no_model_data_or_network_library():
    names = [
        ".".join(p.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        for p in doctest_modules()
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "from embedlab.search import analyze; analyze('warm up the stemmer')\n"
        "from embedlab.evaluate import ndcg_at_10; ndcg_at_10({'q': {'d': 1.0}}, {'q': {'d': 1}})\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
