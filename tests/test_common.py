"""Shared helpers: the checked matrix and the timers (embedlab.common)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab import common
from embedlab.common import best_time, elapsed, finite_matrix


def test_finite_matrix_casts_and_accepts_tensors():
    a = finite_matrix([[1, 2], [3, 4]], "emb")
    assert a.dtype == np.float32 and a.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    t = torch.ones(2, 3, requires_grad=True)  # np.asarray alone would refuse this tensor
    assert finite_matrix(t, "emb").shape == (2, 3)
    half = torch.tensor([[0.5, 1.5]], dtype=torch.bfloat16)  # as LLM embedders may return
    assert finite_matrix(half, "emb").tolist() == [[0.5, 1.5]]
    codes = np.zeros((2, 1), dtype=np.uint8)
    assert finite_matrix(codes, "codes", dtype=None).dtype == np.uint8


@pytest.mark.parametrize(
    ("x", "min_rows", "match"),
    [
        (np.ones(3), 1, r"emb must be a 2-D array \(rows, D\).*got shape \(3,\)"),
        (np.ones((0, 3)), 1, r"at least 1 row\(s\); got shape \(0, 3\)"),
        (np.ones((3, 0)), 0, r"D >= 1.*got shape \(3, 0\)"),
        (np.ones((1, 3)), 2, r"at least 2 row\(s\)"),
        ([[1.0, np.inf], [np.nan, 0.0], [1.0, 1.0]], 1, "emb has 2 row"),
    ],
)
def test_finite_matrix_names_the_argument_and_what_was_expected(x, min_rows, match):
    with pytest.raises(ValueError, match=match):
        finite_matrix(x, "emb", min_rows=min_rows)


def test_finite_matrix_allows_zero_rows_when_asked():
    assert finite_matrix(np.ones((0, 4)), "corpus", min_rows=0).shape == (0, 4)


def _fake_clock(monkeypatch, ticks):
    clock = iter(ticks)
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(clock))


def test_best_time_is_the_minimum_not_the_mean_or_max(monkeypatch):
    # three calls lasting 3, 1 and 2 s: min 1, mean 2, max 3
    _fake_clock(monkeypatch, [0.0, 3.0, 10.0, 11.0, 20.0, 22.0])
    calls = []
    assert best_time(lambda: calls.append(1), repeat=3) == 1.0
    assert len(calls) == 3


def test_elapsed_times_one_call(monkeypatch):
    _fake_clock(monkeypatch, [5.0, 7.5])
    assert elapsed(lambda: None) == 2.5


def test_best_time_bad_repeat():
    with pytest.raises(ValueError, match="repeat"):
        best_time(lambda: None, repeat=0)
