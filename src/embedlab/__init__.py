"""embedlab: helpers for the text-embeddings course.

Importing the package applies offline mode (``EMBEDLAB_OFFLINE=1``) before anything
imports ``huggingface_hub``, which reads its settings at import time.
"""

from __future__ import annotations

import logging

from embedlab.config import apply_offline_env as _apply_offline_env

_apply_offline_env()

from embedlab.config import is_offline, profile, seed_everything  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "claim",
    "comparison",
    "is_offline",
    "profile",
    "report_claims",
    "run_line",
    "seed_everything",
    "setup",
]


def setup(seed: int = 0) -> str:
    """Seed everything, apply the offline settings and print the profile line.

    Returns:
        The printed line, e.g. ``embedlab 0.1.0 | profile fast | offline``.
    """
    _apply_offline_env()
    seed_everything(seed)
    _quiet_libraries()
    _check_figures_before_display()
    mode = (
        "offline (local mirror + EMBEDLAB_DATA_DIR)"
        if is_offline()
        else "online (Hugging Face Hub)"
    )
    line = f"embedlab {__version__} | profile {profile().name} | {mode} | seed {seed}"
    print(line)
    return line


def run_line(models: list[str], data: dict[str, int]) -> str:
    """Print the one-line summary at the top of a notebook: profile, models, data sizes.

    Models whose offline weights are dequantized (see the mirror's manifest) are marked
    so, because their scores may differ slightly from the published full-precision ones.

    Args:
        models: canonical Hub ids, e.g. ``["sentence-transformers/all-MiniLM-L6-v2"]``.
        data: name -> number of rows, e.g. ``{"STS-B test": 1379}``.
    """
    from embedlab.offline import weights_note

    names = ", ".join(f"{m}{weights_note(m)}" for m in models)
    sizes = ", ".join(f"{k} {v:,}" for k, v in data.items())
    line = f"[{profile().name}] models: {names} | data: {sizes}"
    print(line)
    return line


def _check_figures_before_display() -> None:
    """In IPython, flag figures with unlabelled axes before the inline backend shows them."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    from embedlab.plots import warn_unlabelled_figures

    callbacks = ip.events.callbacks["post_execute"]
    if warn_unlabelled_figures not in callbacks:
        callbacks.insert(0, warn_unlabelled_figures)  # before matplotlib-inline's flush


class _DropOfflineHubNotice(logging.Filter):
    """Offline, huggingface_hub warns that it "could not reach the Hub" on every model load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (is_offline() and "Could not reach the Hub" in record.getMessage())


def _quiet_libraries() -> None:
    """Keep notebook output to what teaches: no weight-loading bars, no offline notices."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    # A new head's "LOAD REPORT ... MISSING" table is expected (the notebook says so in
    # prose); errors still show.
    transformers.utils.logging.set_verbosity_error()
    for name in ("huggingface_hub.hf_api",):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropOfflineHubNotice) for f in logger.filters):
            logger.addFilter(_DropOfflineHubNotice())


VERDICTS = ("reproduced", "direction holds", "not reproduced", "not comparable")
CLAIM_KEYS = ("id", "claim", "source", "published", "measured", "setting", "verdict", "ci95")


def _check_claim(row: dict) -> None:
    """The claims contract: keys, kebab-case id, a known verdict, an interval that backs it."""
    import re

    if set(row) != set(CLAIM_KEYS):
        raise ValueError(f"claim row keys {sorted(row)} must be exactly {sorted(CLAIM_KEYS)}")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", str(row["id"])):
        raise ValueError(f"claim id {row['id']!r} must be kebab-case, e.g. 'rerank-gain'")
    if row["verdict"] not in VERDICTS:
        raise ValueError(f"verdict {row['verdict']!r} must be one of {VERDICTS}")
    ci = row["ci95"]
    if ci is not None and not (len(ci) == 2 and float(ci[0]) <= float(ci[1])):
        raise ValueError(f"ci95 must be None or [low, high] with low <= high, got {ci!r}")
    if row["verdict"] == "direction holds" and (ci is None or float(ci[0]) <= 0 <= float(ci[1])):
        raise ValueError(f"{row['id']}: 'direction holds' needs a ci95 that excludes 0, got {ci}")


def claim(
    id: str,
    claim: str,
    source: str,
    measured: float,
    setting: str,
    verdict: str,
    published: float | None = None,
    ci95: list[float] | None = None,
) -> dict:
    """One claim row for :func:`report_claims` (a plain figure: no interval).

    Example:
        >>> row = claim("demo-sts", "MiniLM scores 82 on STS-B", "SBERT docs", 81.7, "STS-B test",
        ...             "reproduced", published=82.0)
        >>> row["measured"], row["verdict"], row["ci95"]
        (81.7, 'reproduced', None)
    """
    return _row(id, claim, source, published, measured, setting, verdict, ci95)


def _row(*values) -> dict:
    return dict(zip(CLAIM_KEYS, values, strict=True))


def comparison(
    id: str, claim: str, source: str, delta, setting: str, direction: int = 1, **extra
) -> dict:
    """A comparison row from an :class:`embedlab.evaluate.Delta` (B minus A, x 100).

    ``verdict`` is ``direction holds`` only when the 95% interval excludes 0 on the
    side the paper predicts (``direction`` +1: B > A; -1: B < A).

    Example:
        >>> from embedlab.evaluate import Delta
        >>> row = comparison("demo-gain", "B beats A", "a paper", Delta(3.2, 1.1, 5.0), "SciFact")
        >>> row["measured"], row["ci95"], row["verdict"]
        (3.2, [1.1, 5.0], 'direction holds')
    """
    verdict = extra.pop("verdict", None) or delta.verdict(direction)
    published = extra.pop("published", None)
    if extra:
        raise ValueError(f"unexpected comparison fields {sorted(extra)}")
    return _row(id, claim, source, published, delta.delta, setting, verdict, delta.ci95)


def report_claims(notebook: str, rows: list[dict]) -> None:
    """Print a notebook's claims and attach them to its output as JSON.

    Each row has the keys of :data:`CLAIM_KEYS` (build it with :func:`claim` or
    :func:`comparison`): a kebab-case ``id``; ``verdict``, one of :data:`VERDICTS`;
    ``ci95``, ``[low, high]`` for a comparison (B minus A over the same test items,
    paired bootstrap) or ``None``. ``scripts/notebooks.py readme`` collects these outputs
    into README's "Claims: published vs measured" table, so the README never holds a
    number that a notebook did not produce.

    Raises:
        ValueError: a row breaks the contract (missing key, unknown verdict, a
            ``direction holds`` whose interval includes 0, a repeated id).

    Example:
        >>> rows = [claim("demo-sts", "a claim", "a paper", 81.734, "STS-B test", "reproduced")]
        >>> report_claims("00_demo", rows)  # doctest: +ELLIPSIS
        demo-sts: 81.73 -> reproduced [STS-B test]
        {'application/json': {'embedlab_claims': {'notebook': '00_demo', 'rows': [...]}}}
    """
    from IPython.display import display

    for row in rows:
        _check_claim(row)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique within a notebook, got {ids}")
    clean = [{**r, "measured": round(float(r["measured"]), 2)} for r in rows]
    for r in clean:
        pub = "" if r["published"] is None else f" (published {r['published']})"
        ci = "" if r["ci95"] is None else f" 95% CI [{r['ci95'][0]}, {r['ci95'][1]}]"
        print(f"{r['id']}: {r['measured']}{ci}{pub} -> {r['verdict']} [{r['setting']}]")
    display(
        {"application/json": {"embedlab_claims": {"notebook": notebook, "rows": clean}}}, raw=True
    )
