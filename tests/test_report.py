"""report_claims: validated rows, printed and attached as JSON for the README."""

from __future__ import annotations

import pytest

import embedlab

ROW = {"claim": "x", "source": "paper", "published": 1.0, "measured": 1.234, "setting": "s"}


def test_report_claims_prints_and_emits_json(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    embedlab.report_claims("01", [ROW])
    assert "x: 1.23 (published 1.0) [s]" in capsys.readouterr().out
    payload = shown[0]["application/json"]["embedlab_claims"]
    assert payload == {"notebook": "01", "rows": [{**ROW, "measured": 1.23}]}


def test_report_claims_rejects_malformed_rows():
    with pytest.raises(ValueError, match="must be exactly"):
        embedlab.report_claims("01", [{"claim": "x", "measured": 1.0}])
