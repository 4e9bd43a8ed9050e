"""Metrics: Spearman for STS, and nDCG / MRR / Recall / MAP at k for retrieval.

Retrieval metrics follow BEIR / pytrec_eval conventions (what MTEB reports):

- nDCG@k: linear gain ``rel``, discount ``1 / log2(rank + 1)``, ideal = the qrels sorted.
- MRR@k: ``1 / rank`` of the first relevant hit within k, else 0.
- Recall@k: relevant hits in the top k / all relevant documents.
- MAP@k: sum of precision@rank at each relevant hit within k / all relevant documents.

Every query in the qrels counts: a query absent from the run scores 0 (pytrec_eval
instead silently skips it, which inflates scores when a system drops queries).
Scores are returned in [0, 1]; notebooks multiply by 100 as papers do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr

from embedlab.data import check_qrels

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def spearman(predicted: Sequence[float] | np.ndarray, gold: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation between predicted similarities and gold scores.

    Returns: rho in [-1, 1] (MTEB reports 100 * rho of the cosine similarities).
    Raises:
        ValueError: unequal lengths, fewer than 2 pairs, NaN/inf, or constant predicted
            or gold scores (where scipy would return NaN).
    """
    p, g = np.asarray(predicted, dtype=float), np.asarray(gold, dtype=float)
    if p.shape != g.shape or p.ndim != 1:
        raise ValueError(f"predicted {p.shape} and gold {g.shape} must be 1-D of equal length")
    if len(p) < 2:
        raise ValueError(f"need at least 2 pairs for a rank correlation, got {len(p)}")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ValueError("predicted and gold scores must be finite (found NaN or inf)")
    for name, x in (("predicted", p), ("gold", g)):
        if np.all(x == x[0]):
            raise ValueError(
                f"{name} scores are all equal ({x[0]}): a rank correlation is undefined; "
                "expected at least two different values (e.g. a model that collapsed)"
            )
    return float(spearmanr(p, g).statistic)


def pair_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (B, D) arrays. Returns: (B,) cos(a_i, b_i)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (B, D) arrays of the same shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("embeddings contain NaN or inf")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def sts_spearman(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> float:
    """STS score as MTEB computes it: Spearman(cos(e1_i, e2_i), gold_i)."""
    return spearman(pair_cosine(emb1, emb2), gold)


def _ranked(hits: Mapping[str, float], k: int) -> list[str]:
    """Doc ids by descending score (ties: doc id, for determinism), cut at k."""
    return [d for d, _ in sorted(hits.items(), key=lambda x: (-x[1], x[0]))[:k]]


def _query_metrics(ranked: list[str], rels: Mapping[str, int], k: int) -> dict[str, float]:
    relevant = {d for d, r in rels.items() if r > 0}
    gains = [rels.get(d, 0) for d in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    first = next((i for i, d in enumerate(ranked[:k]) if d in relevant), None)
    hits, precisions = 0, []
    for i, d in enumerate(ranked[:k]):
        if d in relevant:
            hits += 1
            precisions.append(hits / (i + 1))
    n_rel = max(len(relevant), 1)
    return {
        f"ndcg@{k}": dcg / idcg if idcg > 0 else 0.0,
        f"mrr@{k}": 1.0 / (first + 1) if first is not None else 0.0,
        f"recall@{k}": hits / n_rel,
        f"map@{k}": sum(precisions) / n_rel,
    }


def retrieval_per_query(run: Run, qrels: Qrels, k: int = 10) -> dict[str, dict[str, float]]:
    """Per-query nDCG/MRR/Recall/MAP at k: ``{qid: {"ndcg@10": ..., ...}}``.

    Used for paired bootstrap tests; :func:`retrieval_scores` averages it.
    """
    check_qrels(qrels)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return {
        qid: _query_metrics(_ranked(run.get(qid, {}), k), rels, k) for qid, rels in qrels.items()
    }


def retrieval_scores(run: Run, qrels: Qrels, ks: Iterable[int] = (10,)) -> dict[str, float]:
    """Mean retrieval metrics over every query in ``qrels``.

    Production equivalents: ``pytrec_eval.RelevanceEvaluator`` (BEIR, MTEB) or
    ``sentence_transformers.evaluation.InformationRetrievalEvaluator``.

    Returns: ``{"ndcg@10": ..., "mrr@10": ..., "recall@10": ..., "map@10": ...}`` for
    every k in ``ks``, each in [0, 1].
    """
    out: dict[str, float] = {}
    for k in ks:
        per_query = retrieval_per_query(run, qrels, k)
        for name in next(iter(per_query.values())):
            out[name] = float(np.mean([m[name] for m in per_query.values()]))
    return out


def benchmark(model, tasks: Iterable[str] | None = None) -> dict[str, float]:
    """MTEB-style scores of ``model`` over the course's task families.

    See :mod:`embedlab.benchmark` for the tasks and metrics; returns ``{task: score x 100}``.
    """
    from embedlab.benchmark import benchmark as _benchmark

    return _benchmark(model, None if tasks is None else list(tasks))
