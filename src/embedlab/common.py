"""Small helpers shared by several modules: run/qrels types and check, a matrix check, a timer.

Imports only numpy and the standard library, so every module (and the doctests) can
use it without pulling in torch, datasets or a model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping

import numpy as np

Run = dict[str, dict[str, float]]
"""BEIR's result format: ``{query_id: {doc_id: score}}``, higher score = better."""

Qrels = dict[str, dict[str, int]]
"""BEIR's relevance judgments: ``{query_id: {doc_id: relevance}}``, relevance > 0 = relevant."""


def check_qrels(qrels: object, corpus_ids: Collection[str] | None = None) -> None:
    """Validate relevance judgments shaped ``{query_id: {doc_id: score}}``.

    Ids must be strings (BEIR's convention; an int id would silently never match) and
    scores non-negative finite numbers. With ``corpus_ids``, every judged doc must be in
    the corpus.

    Raises:
        ValueError: naming the first offending query/doc and what was expected.
    """
    expected = "expected a dict query-id -> {doc-id: non-negative score}"
    if not isinstance(qrels, Mapping):
        raise ValueError(f"qrels is a {type(qrels).__name__}; {expected}")
    if not qrels:
        raise ValueError(f"qrels is empty; {expected}")
    for qid, docs in qrels.items():
        if not isinstance(qid, str):
            raise ValueError(f"qrels query id {qid!r} is a {type(qid).__name__}; ids must be str")
        if not isinstance(docs, Mapping) or not docs:
            raise ValueError(f"qrels[{qid!r}] is {docs!r}; {expected}")
        for doc, score in docs.items():
            if not isinstance(doc, str):
                raise ValueError(f"qrels[{qid!r}] doc id {doc!r} is not a str")
            numeric = isinstance(score, (int, float)) and not isinstance(score, bool)
            if not numeric or not math.isfinite(score) or score < 0:
                raise ValueError(
                    f"qrels[{qid!r}][{doc!r}] = {score!r}; scores must be non-negative numbers"
                )
    if corpus_ids is not None:
        _check_docs_in_corpus(qrels, corpus_ids)


def _check_docs_in_corpus(
    qrels: Mapping[str, Mapping[str, object]], corpus_ids: Collection[str]
) -> None:
    ids = corpus_ids if isinstance(corpus_ids, (set, frozenset, dict)) else set(corpus_ids)
    missing = sorted({d for docs in qrels.values() for d in docs if d not in ids})
    if missing:
        raise ValueError(
            f"{len(missing)} judged doc id(s) are not in the corpus of {len(ids):,} docs, "
            f"e.g. {missing[:5]}"
        )


def finite_matrix(x, name: str, dtype: type | None = np.float32, min_rows: int = 1) -> np.ndarray:
    """``x`` as a 2-D (rows, D) array with D >= 1, or a ValueError naming ``name``.

    Args:
        x: array-like or a torch tensor (detached and moved to the CPU first).
        name: the argument's name, quoted in the error.
        dtype: cast to this type; None keeps the input's (e.g. uint8 binary codes).
        min_rows: fewest rows accepted (0 lets a caller give its own "empty" error).

    Returns: the (rows, D) array; float rows are checked for NaN and inf.

    Example:
        >>> finite_matrix([[1, 2], [3, 4]], "emb").dtype
        dtype('float32')
        >>> finite_matrix([1.0, 2.0], "emb")
        Traceback (most recent call last):
        ...
        ValueError: emb must be a 2-D array (rows, D) with D >= 1 and at least 1 row(s); got shape (2,)
        >>> finite_matrix([[0.0, float("nan")]], "emb")
        Traceback (most recent call last):
        ...
        ValueError: emb has 1 row(s) with NaN or inf; embeddings must be finite
    """
    if hasattr(x, "detach"):  # a torch tensor: numpy refuses grad, GPU and bfloat16 ones
        x = x.detach().cpu()
        x = x.float() if dtype == np.float32 and x.is_floating_point() else x
    a = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] == 0:
        raise ValueError(
            f"{name} must be a 2-D array (rows, D) with D >= 1 and at least {min_rows} row(s); "
            f"got shape {a.shape}"
        )
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).any(axis=1).sum())
        raise ValueError(f"{name} has {bad} row(s) with NaN or inf; embeddings must be finite")
    return a


def elapsed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of ``fn()`` (``time.perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Wall-clock seconds of the fastest of ``repeat`` calls of ``fn()``.

    The minimum is the least noisy estimate on a shared machine (other processes only
    ever add time). Leaves out warm-up: call ``fn`` once before if the first call is slow.
    Production equivalent: ``min(timeit.Timer(fn).repeat(repeat, number=1))``.

    Example:
        >>> calls = []
        >>> seconds = best_time(lambda: calls.append(1), repeat=4)
        >>> len(calls), seconds < 1.0
        (4, True)
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    return min(elapsed(fn) for _ in range(repeat))


def build_command(module: str, build: Callable[[], object], argv: list[str] | None = None) -> int:
    """``python -m embedlab.<module> build``: run ``build()``, print what it made and its time.

    The shared command line of the ``make artifacts`` steps that cache one recipe's result.
    Returns: the exit status, 0 after a build, 2 (and a usage line on stderr) for any
    other arguments.

    Example:
        >>> build_command("demo", lambda: "made", ["build"])  # doctest: +ELLIPSIS
        demo: made (0 s)
        0
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print(f"usage: python -m embedlab.{module} build", file=sys.stderr)
        return 2
    start = time.perf_counter()
    made = build()
    print(f"{module}: {made} ({time.perf_counter() - start:.0f} s)")
    return 0


def settings_key(settings: Mapping[str, object]) -> str:
    """12 hex digits of a content hash over ``settings`` (JSON, keys sorted).

    The cache key of every built artifact: change any setting and the key changes, so a
    different recipe never loads a stale result.

    Example:
        >>> settings_key({"lr": 0.1, "steps": 2}) == settings_key({"steps": 2, "lr": 0.1})
        True
        >>> settings_key({"lr": 0.1}) != settings_key({"lr": 0.2})
        True
    """
    import hashlib
    import json

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
