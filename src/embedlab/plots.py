"""Plots the notebooks share (matplotlib; one figure per call, returned for tweaking)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt


def bar_scores(
    scores: Mapping[str, float],
    title: str,
    xlabel: str,
    reference: Mapping[str, float] | None = None,
    ylabel: str = "model",
):
    """Horizontal bars of measured scores, with optional published values as markers.

    Args:
        scores: label -> measured score (e.g. Spearman x 100), drawn top to bottom.
        reference: label -> published score, drawn as a black tick on the same row.
    Returns: the matplotlib Figure.
    """
    if not scores:
        raise ValueError("bar_scores needs at least one score")
    labels = list(scores)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.2))
    ys = range(len(labels))
    ax.barh(ys, [scores[k] for k in labels], color="#4C72B0")
    for y, k in zip(ys, labels, strict=True):
        ax.text(scores[k] + 0.5, y, f"{scores[k]:.1f}", va="center", fontsize=9)
        if reference and k in reference:
            ax.plot([reference[k]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel + ("  (black tick: published)" if reference else ""))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xlim(0, max(100, max(scores.values()) + 8))
    fig.tight_layout()
    return fig


def unlabelled_axes(fig) -> list[str]:
    """Axes of ``fig`` that draw data but lack an x or a y label (colorbars excepted).

    Returns: one line per offending axes, e.g. ``"axes 0 'Recall vs QPS': no y label"``.
    """
    missing = []
    for i, ax in enumerate(fig.axes):
        if not ax.axison or not ax.has_data() or getattr(ax, "_colorbar", None) is not None:
            continue
        lacks = [
            n for n, lab in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if not lab.strip()
        ]
        if lacks:
            missing.append(f"axes {i} {ax.get_title()!r}: no {' or '.join(lacks)} label")
    return missing


def warn_unlabelled_figures() -> list[str]:
    """Print (to stderr) every open figure's unlabelled axes; run before figures are shown.

    ``embedlab.setup()`` registers this as an IPython ``post_execute`` hook, ahead of the
    inline backend's own hook that shows the figures, so a plot without axis labels leaves
    a "missing axis label" line in the cell's output (a test scans committed notebooks).
    """
    import sys

    lines = [
        f"embedlab: figure {num} missing axis label: {m}"
        for num in plt.get_fignums()
        for m in unlabelled_axes(plt.figure(num))
    ]
    for line in lines:
        print(line, file=sys.stderr)
    return lines
