"""The timing asserts of notebooks 03 and 04 hold while a busy loop occupies one CPU core.

Wall-clock asserts that hold on a quiet machine used to fail on a shared one (issue 16:
notebook 04 failed "QPS falls roughly like 1/N" on a busy CI runner). The notebooks now
compare medians of interleaved repeats with wide margins. This test re-runs *their own
cells* (those whose first lines say ``# timing: re-run with one CPU core busy ...``, read
from the committed ``.ipynb``) with one core spinning, so a fragile assert shows up here.

What it leaves out, and why: the cells run after the notebook's first code cell (imports
and data), not after the whole notebook, so notebook 04's timing runs on random unit
vectors of the notebook's shape (N_TARGET x D float32) instead of MiniLM vectors plus
mixture draws; an exact scan reads every byte whatever the values are. The ANN speed-up
asserts of 04 depend on the vectors' structure (random vectors have no clusters for IVF)
and are checked by the regular nbval run only. Running both notebooks whole under load
took 18 minutes of CI; this takes about 2 to 3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "# timing: re-run with one CPU core busy by tests/test_under_load.py"
# the arguments of `make nbval` (Makefile) / NBVAL_ARGS in scripts/notebooks.py
NBVAL = ("--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider")
BUSY_LOOP = "while True:\n    pass\n"


def notebook_cells(slug: str) -> tuple[str, list[str]]:
    """(the first code cell after the generated bootstrap, the marked timing cells)."""
    nb = json.loads((ROOT / "notebooks" / f"{slug}.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tags = [c["metadata"].get("tags", []) for c in code]
    first = next(i for i, t in enumerate(tags) if "generated-bootstrap" in t) + 1
    sources = ["".join(c["source"]) for c in code]
    return sources[first], [s for s in sources if MARK in s.split("\n")[:3]]


def run_cells(cells: list[str], namespace: dict) -> None:
    for src in cells:
        # NBVAL markers and IPython magics are comments or absent; the cells are plain Python
        exec(compile(src, "<notebook cell>", "exec"), namespace)  # noqa: S102


@pytest.fixture
def busy_core():
    """One process spinning on one core for the duration of the test; killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    time.sleep(0.5)
    assert proc.poll() is None, "the busy loop did not start"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def real_data():
    from embedlab.config import data_dir, is_offline

    if is_offline() and data_dir() is None:
        pytest.skip("offline without EMBEDLAB_DATA_DIR: the notebooks cannot load their data")
    matplotlib.use("Agg")


@pytest.mark.parametrize(
    ("slug", "n_cells"),
    [("03_bi_vs_cross_encoders", 4), ("04_vector_indexes_and_compression", 3)],
)
def test_notebooks_mark_their_timing_cells(slug, n_cells):
    setup, timed = notebook_cells(slug)
    assert "import embedlab" in setup
    assert len(timed) == n_cells, f"{slug}: expected {n_cells} marked timing cells"
    assert any("interleaved_" in s for s in timed), "the marked cells must include the timing"
    assert any("assert " in s for s in timed), "the marked cells must include the asserts"


@pytest.mark.slow
def test_notebook_03_timing_cells_pass_with_one_core_busy(models_available, real_data, busy_core):
    setup, timed = notebook_cells("03_bi_vs_cross_encoders")
    ns: dict = {}
    run_cells([setup, *timed], ns)  # an AssertionError here is the notebook's own assert
    assert busy_core.poll() is None, "the busy loop must run for the whole timing"
    assert ns["slope_ce"] > ns["slope_bi"], "the cells ran and fitted both slopes"


@pytest.mark.slow
def test_notebook_04_timing_cells_pass_with_one_core_busy(real_data, busy_core):
    setup, timed = notebook_cells("04_vector_indexes_and_compression")
    ns: dict = {}
    run_cells([setup], ns)
    rng = np.random.default_rng(0)
    D, n, q = 384, ns["N_TARGET"], 300  # MiniLM's width, the notebook's corpus, 300 queries

    def unit(rows: int) -> np.ndarray:
        x = rng.standard_normal((rows, D), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    ns.update(D=D, X=unit(n), query_emb=unit(q))
    run_cells(timed, ns)
    assert busy_core.poll() is None, "the busy loop must run for the whole timing"
    assert list(ns["scale"].index) == [10_000, 30_000, 100_000, 300_000, n]


def test_nbval_arguments_match_the_course_runner():
    script = (ROOT / "scripts" / "notebooks.py").read_text(encoding="utf-8")
    line = next(ln for ln in script.splitlines() if ln.startswith("NBVAL_ARGS = "))
    for arg in NBVAL:
        assert f'"{arg}"' in line, f"{arg} is not in scripts/notebooks.py's {line}"
