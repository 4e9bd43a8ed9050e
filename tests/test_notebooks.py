"""Notebooks match their sources and the generated parts; they follow the skeleton."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("nbtool", ROOT / "scripts" / "notebooks.py")
nbtool = importlib.util.module_from_spec(spec)
sys.modules["nbtool"] = nbtool  # dataclasses need their module registered
spec.loader.exec_module(nbtool)

ENTRIES = nbtool.present()


def test_course_has_notebooks():
    assert ENTRIES and ENTRIES[0].slug.startswith("01_")


def test_notebooks_match_sources_and_generated_parts():
    assert nbtool.differences() == []


def test_readme_table_is_current():
    text = (ROOT / "README.md").read_text()
    assert nbtool.render_readme(text) == text, "run: python scripts/notebooks.py readme"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.slug)
def test_skeleton_and_clean_outputs(entry):
    nb = nbformat.read(ROOT / "notebooks" / f"{entry.slug}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "colab-badge.svg" in nb.cells[0].source
    assert nb.cells[1].source.startswith("**You will learn**")
    assert nb.cells[2].source == nbtool.BOOTSTRAP
    for needle in ("## Summary", "**Try it**", "## Exercises"):
        assert needle in prose, f"{entry.slug} lacks {needle!r} in a markdown cell"
    assert "assert " in text
    # a missing "# %% [markdown]" leaves prose as comments at the end of a code cell
    swallowed = [
        line
        for c in nb.cells
        if c.cell_type == "code"
        for line in c.source.splitlines()
        if re.match(r"#\s*(#{2,} |\*\*(Try it|Exercise))", line)
    ]
    assert not swallowed, f"{entry.slug}: markdown inside a code cell: {swallowed[:2]}"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "commit outputs from a clean in-order run"
    assert "widgets" not in nb.metadata
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_parse_source_splits_markdown_and_code():
    cells = nbtool.parse_source("# %% [markdown]\n# # Title\n# text\n\n# %%\nx = 1\n")
    assert [c.cell_type for c in cells] == ["markdown", "code"]
    assert cells[0].source == "# Title\ntext" and cells[1].source == "x = 1"


def test_readme_render_requires_markers():
    with pytest.raises(ValueError, match="markers"):
        nbtool.render_readme("no markers here")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.slug)
def test_summary_reports_claims(entry):
    """Each notebook's Summary feeds README's "Reproduced claims" (embedlab.report_claims)."""
    rows = [row for e, row in nbtool.collected_claims() if e.slug == entry.slug]
    assert rows, f"{entry.slug} emits no claims: call embedlab.report_claims in its Summary"
    assert all(isinstance(r["measured"], float | int) for r in rows)


def test_makefile_runs_the_documented_nbval_command():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nnbval:", 1)[1].split("\n\n", 1)[0]
    assert "-m pytest " + " ".join(nbtool.NBVAL_ARGS) in recipe
    assert "--ignore" not in recipe, "every notebook runs under nbval"


def test_conftest_widens_nbval_output_timeout():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    class IPyNbCell:  # stands in for nbval's item class, matched by name
        output_timeout = 5

    class Other:
        output_timeout = 5

    cell, other = IPyNbCell(), Other()
    conftest.pytest_collection_modifyitems([cell, other])
    assert cell.output_timeout == conftest.NBVAL_OUTPUT_TIMEOUT > 5
    assert other.output_timeout == 5


def test_claims_table_escapes_pipes(monkeypatch):
    entry = ENTRIES[0]
    row = {"id": "abs-diff", "claim": "gain of |u-v|", "source": "s", "published": None,
           "measured": 1.0, "setting": "a|b", "verdict": "not comparable", "ci95": None}  # fmt: skip
    monkeypatch.setattr(nbtool, "collected_claims", lambda: [(entry, row)])
    line = nbtool.claims_table().splitlines()[-1]
    assert line.count("|") - line.count("\\|") == 10, line  # nine columns, no extra cells


def test_junit_per_notebook_sums_cells_and_counts_failures(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="notebooks.01_embeddings_and_similarity.ipynb" name="Cell 0" time="1.5"/>'
        '<testcase classname="notebooks.01_embeddings_and_similarity.ipynb" name="Cell 1" time="2.0"/>'
        '<testcase classname="notebooks.05_sbert_training_objectives.ipynb" name="Cell 7" time="9">'
        '<failure message="Timeout"/></testcase>'
        "</testsuite></testsuites>"
    )
    per_nb, failed = nbtool.junit_per_notebook(xml)
    assert per_nb == {"01_embeddings_and_similarity": 3.5, "05_sbert_training_objectives": 9.0}
    assert failed == 1


# Strings that must not appear in committed outputs: frozen progress bars (a saved widget
# keeps its first frame), the Trainer's HTML progress table, transformers' "LOAD REPORT"
# tables, and figures that embedlab.setup() flagged for missing axis labels.
OUTPUT_SMELLS = (" 0%|", "<progress", "LOAD REPORT", "missing axis label")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.slug)
def test_committed_outputs_have_no_frozen_bars_or_unlabelled_plots(entry):
    nb = nbformat.read(ROOT / "notebooks" / f"{entry.slug}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(
                "".join(v) for v in out.get("data", {}).values() if isinstance(v, str | list)
            )
            found = [s for s in OUTPUT_SMELLS if s in text]
            assert not found, f"{entry.slug} cell {i} output shows {found}"


def test_clean_outputs_drops_progress_displays_and_bar_lines():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/plain": "Batches:   0%|   | 0/4 [00:00<?, ?it/s]"}),
        nbformat.v4.new_output("display_data", data={"text/html": "<progress value='3'>", "text/plain": "x"}),
        nbformat.v4.new_output("stream", name="stderr", text="warn\rBatches: 100%|##| 4/4 [00:01<00:00]\nkept\n"),
        nbformat.v4.new_output("stream", name="stdout", text="score 81.2\n"),
    ]  # fmt: skip
    nb.cells = [cell]
    nbtool._clean_outputs(nb)
    texts = [o.get("text") for o in nb.cells[0].outputs]
    assert texts == ["kept\n", "score 81.2\n"], texts


def test_every_claim_row_carries_id_verdict_and_an_interval_that_backs_it():
    rows = [row for _, row in nbtool.collected_claims()]
    assert rows
    for r in rows:
        assert {"id", "verdict", "ci95"} <= set(r), r.get("claim")
        if r["verdict"] == "direction holds":
            low, high = r["ci95"]
            assert low > 0 or high < 0, r["id"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "claim ids are unique across the course"


def test_nbval_compares_outputs_without_progress_bars():
    """A fresh run's progress bars must not count against committed (bar-free) outputs."""
    spec = importlib.util.spec_from_file_location("root_conftest2", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    bar = nbformat.v4.new_output(
        "display_data", data={"text/plain": "Batches:   0%|   | 0/4 [00:00<?, ?it/s]"}
    )
    err = nbformat.v4.new_output(
        "stream", name="stderr", text="Batches: 100%|##| 4/4 [00:01<00:00]\n"
    )
    result = nbformat.v4.new_output("stream", name="stdout", text="82.03\n")
    assert conftest.drop_progress([bar, err, result]) == [result]
    seen = []
    compare = conftest._comparing_without_progress(lambda t, r, s=None: seen.append((t, r)) or True)
    assert compare([bar, result], [result])
    assert seen == [([result], [result])]


def test_notebook_03_reports_cross_minus_bi_for_every_pair_task():
    """Issue 10: one cross-minus-bi row per pair task, each with its interval, and the
    direction holding (interval above 0) for at least one; the rows come from the
    committed outputs of a run, and `make artifacts` builds exactly these tasks."""
    from embedlab.pairtrain import NOTEBOOK_TASKS

    rows = {r["id"]: r for e, r in nbtool.collected_claims() if e.slug.startswith("03_")}
    ids = {f"cross-minus-bi-{t}" for t in NOTEBOOK_TASKS}
    assert {"cross-minus-bi-sick-nli", "cross-minus-bi-sickr", "cross-minus-bi-stsb"} <= ids
    assert ids <= set(rows), sorted(ids - set(rows))
    for i in ids:
        low, high = rows[i]["ci95"]
        assert low <= rows[i]["measured"] <= high, i
    assert any(rows[i]["verdict"] == "direction holds" and rows[i]["ci95"][0] > 0 for i in ids)
