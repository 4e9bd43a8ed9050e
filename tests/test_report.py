"""report_claims: the claims contract (id, verdict, ci95), printed and attached as JSON."""

from __future__ import annotations

import pytest

import embedlab
from embedlab.evaluate import Delta

ROW = embedlab.claim(
    "minilm-stsb", "x", "paper", 1.234, "s", "reproduced", published=1.0
)  # fmt: skip


def test_report_claims_prints_and_emits_json(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    embedlab.report_claims("01", [ROW])
    assert "minilm-stsb: 1.23 (published 1.0) -> reproduced [s]" in capsys.readouterr().out
    payload = shown[0]["application/json"]["embedlab_claims"]
    assert payload == {"notebook": "01", "rows": [{**ROW, "measured": 1.23}]}


def test_comparison_row_carries_interval_and_verdict():
    row = embedlab.comparison("a-gain", "B over A", "paper", Delta(2.0, 0.5, 3.5), "set")
    assert row["ci95"] == [0.5, 3.5] and row["verdict"] == "direction holds"
    assert row["measured"] == 2.0 and row["published"] is None
    assert embedlab.comparison("b", "c", "s", Delta(2.0, -0.5, 3.5), "x")["verdict"] == (
        "not reproduced"
    )
    assert embedlab.comparison("b", "c", "s", Delta(-2, -3, -1), "x", direction=-1)[
        "verdict"
    ] == "direction holds"  # fmt: skip


@pytest.mark.parametrize(
    "change, match",
    [
        ({"id": "Not Kebab"}, "kebab-case"),
        ({"verdict": "maybe"}, "verdict"),
        ({"verdict": "direction holds", "ci95": [-1.0, 2.0]}, "excludes 0"),
        ({"verdict": "direction holds", "ci95": None}, "excludes 0"),
        ({"ci95": [2.0, 1.0]}, "low <= high"),
    ],
)
def test_report_claims_rejects_rows_that_break_the_contract(change, match):
    with pytest.raises(ValueError, match=match):
        embedlab.report_claims("01", [{**ROW, **change}])


def test_report_claims_rejects_missing_keys_and_repeated_ids():
    with pytest.raises(ValueError, match="must be exactly"):
        embedlab.report_claims("01", [{"claim": "x", "measured": 1.0}])
    with pytest.raises(ValueError, match="unique"):
        embedlab.report_claims("01", [ROW, ROW])
