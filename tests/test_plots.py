"""Figures carry axis labels; the check runs before the inline backend shows them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from embedlab.plots import bar_scores, unlabelled_axes, warn_unlabelled_figures  # noqa: E402


def test_unlabelled_axes_names_the_missing_label():
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [1, 2])
    a.set_xlabel("steps")
    b.plot([0, 1], [1, 2])
    b.set_xlabel("x")
    b.set_ylabel("y")
    assert unlabelled_axes(fig) == ["axes 0 '': no y label"]
    plt.close(fig)


def test_empty_axes_and_colorbars_are_not_flagged():
    fig, ax = plt.subplots()
    im = ax.imshow([[0, 1], [1, 0]])
    ax.set_xlabel("query")
    ax.set_ylabel("document")
    fig.colorbar(im)
    fig.add_subplot(2, 2, 4).axis("off")
    assert unlabelled_axes(fig) == []
    plt.close(fig)


def test_bar_scores_is_labelled_and_the_warning_goes_to_stderr(capsys):
    plt.close("all")
    fig = bar_scores({"a": 50.0, "b": 60.0}, "t", "Spearman x 100")
    assert unlabelled_axes(fig) == []
    bad, ax = plt.subplots()
    ax.plot([1, 2])
    lines = warn_unlabelled_figures()
    assert len(lines) == 1 and "no x or y label" in lines[0]
    assert "missing axis label" in capsys.readouterr().err
    plt.close("all")
