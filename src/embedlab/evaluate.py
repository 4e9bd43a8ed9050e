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
from typing import NamedTuple

import numpy as np
from scipy.stats import spearmanr

from embedlab.common import Qrels, Run, check_qrels, finite_matrix


def spearman(predicted: Sequence[float] | np.ndarray, gold: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation between predicted similarities and gold scores.

    Returns: rho in [-1, 1] (MTEB reports 100 * rho of the cosine similarities).
    Raises:
        ValueError: unequal lengths, fewer than 2 pairs, NaN/inf, or constant predicted
            or gold scores (where scipy would return NaN).

    Example:
        >>> spearman([0.1, 0.4, 0.3], [1.0, 5.0, 2.0])
        1.0
        >>> spearman([0.1, 0.2, 0.3], [3.0, 1.0, 2.0])
        -0.5
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
    """Row-wise cosine similarity of two (B, D) arrays. Returns: (B,) cos(a_i, b_i).

    Example:
        >>> pair_cosine([[1.0, 0.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 2.0]]).round(3).tolist()
        [0.0, 1.0]
    """
    a, b = finite_matrix(a, "a", np.float64), finite_matrix(b, "b", np.float64)
    if a.shape != b.shape:
        raise ValueError(f"need two (B, D) arrays of the same shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def sts_spearman(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> float:
    """STS score as MTEB computes it: Spearman(cos(e1_i, e2_i), gold_i).

    Example:
        >>> sts_spearman([[1, 0], [1, 1], [0, 1]], [[1, 0], [1, 0], [1, 0]], [5.0, 3.0, 0.0])
        1.0
    """
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

    Example:
        >>> m = retrieval_per_query({"q1": {"d1": 0.9, "d2": 0.5}}, {"q1": {"d2": 1}})["q1"]
        >>> round(m["ndcg@10"], 4), m["mrr@10"], m["recall@10"]  # d2 at rank 2
        (0.6309, 0.5, 1.0)
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

    Example:
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d3": 0.8}}
        >>> retrieval_scores(run, {"q1": {"d1": 1}, "q2": {"d4": 1}})  # q1 perfect, q2 missed
        {'ndcg@10': 0.5, 'mrr@10': 0.5, 'recall@10': 0.5, 'map@10': 0.5}
    """
    out: dict[str, float] = {}
    for k in ks:
        per_query = retrieval_per_query(run, qrels, k)
        for name in next(iter(per_query.values())):
            out[name] = float(np.mean([m[name] for m in per_query.values()]))
    return out


def ndcg_at_10(run: Run, qrels: Qrels) -> float:
    """Mean nDCG@10 over every query in ``qrels``, x 100 (the course's and papers' points).

    The same number as ``100 * retrieval_scores(run, qrels)["ndcg@10"]``; a query absent
    from the run scores 0.
    Production equivalent: ``pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})``,
    averaged and x 100 (as MTEB reports it).

    Example:
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d3": 0.8, "d4": 0.7}}
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d4": 1}}
        >>> round(ndcg_at_10(run, qrels), 2)  # q1: 1; q2: 1 / log2(3) = 0.63
        81.55
    """
    return 100 * float(np.mean(ndcg_at_10_per_query(run, qrels)))


def ndcg_at_10_per_query(run: Run, qrels: Qrels, qids: Sequence[str] | None = None) -> np.ndarray:
    """(Q,) nDCG@10 in [0, 1] of each query of ``qids`` (default: every query of ``qrels``,
    in its order): what a paired bootstrap resamples (:func:`delta_mean`'s default
    ``scale=100`` reports the difference in points).

    Raises: ValueError when a query of ``qids`` has no qrels.

    Example:
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d3": 0.8, "d4": 0.7}}
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d4": 1}}
        >>> ndcg_at_10_per_query(run, qrels, ["q2", "q1"]).round(4).tolist()
        [0.6309, 1.0]
    """
    per_query = retrieval_per_query(run, qrels, k=10)
    qids = list(per_query) if qids is None else list(qids)
    missing = [q for q in qids if q not in per_query]
    if missing:
        raise ValueError(f"query {missing[0]!r} has no qrels; expected qids from the qrels")
    return np.array([per_query[q]["ndcg@10"] for q in qids])


class Delta(NamedTuple):
    """System B minus system A on the same test items, in points (x 100), with its interval.

    ``low``/``high`` bound the paired-bootstrap percentile interval (95% unless asked).
    """

    delta: float
    low: float
    high: float

    @property
    def ci95(self) -> list[float]:
        """``[low, high]`` rounded to 2 decimals, as claim rows carry it."""
        return [round(self.low, 2), round(self.high, 2)]

    def verdict(self, direction: int = 1) -> str:
        """``"direction holds"`` when the interval excludes 0 on the expected side, else
        ``"not reproduced"``. ``direction``: +1 if the paper says B > A, -1 if B < A."""
        if direction not in (1, -1):
            raise ValueError(f"direction must be +1 or -1, got {direction!r}")
        holds = self.low > 0 if direction == 1 else self.high < 0
        return "direction holds" if holds else "not reproduced"


def _resamples(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    """(R, n) item indices drawn with replacement; one row per bootstrap resample."""
    if n_items < 2:
        raise ValueError(f"need at least 2 test items to bootstrap, got {n_items}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100 for a stable interval, got {n_resamples}")
    return np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))


def _delta(b_minus_a: float, stats: np.ndarray, level: float, scale: float) -> Delta:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Delta(float(scale * b_minus_a), float(scale * lo), float(scale * hi))


def delta_mean(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    scale: float = 100.0,
) -> Delta:
    """Paired bootstrap of mean(b) - mean(a) over the same test items.

    For metrics that are means of per-item scores: nDCG@10 per query, 0/1 correctness
    per pair (accuracy), a per-pair win indicator.

    Args:
        a, b: (Q,) per-item scores of systems A and B on the same items, same order.
    Returns: :class:`Delta` in points (``scale`` x the score difference).
    Production equivalent: ``scipy.stats.bootstrap((b - a,), np.mean, method="percentile")``.

    Example:
        >>> d = delta_mean([0.5, 0.6, 0.7, 0.8], [0.6, 0.7, 0.8, 0.9], n_resamples=200)
        >>> round(d.delta, 2), d.ci95, d.verdict()  # B beats A by 0.1 on every item
        (10.0, [10.0, 10.0], 'direction holds')
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D score arrays of equal length, got {a.shape}, {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-item scores must be finite (found NaN or inf)")
    idx = _resamples(len(a), n_resamples, seed)
    diff = b - a
    return _delta(diff.mean(), diff[idx].mean(axis=1), level, scale)


def _rowwise_spearman(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(R,) Spearman of each row of (R, n) ``pred`` with the same row of ``gold``."""
    from scipy.stats import rankdata

    rp, rg = rankdata(pred, axis=1), rankdata(gold, axis=1)
    rp -= rp.mean(axis=1, keepdims=True)
    rg -= rg.mean(axis=1, keepdims=True)
    denom = np.sqrt((rp**2).sum(axis=1) * (rg**2).sum(axis=1))
    return (rp * rg).sum(axis=1) / np.maximum(denom, 1e-12)


def delta_spearman(
    pred_a: Sequence[float] | np.ndarray,
    pred_b: Sequence[float] | np.ndarray,
    gold: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Delta:
    """Paired bootstrap of Spearman(b) - Spearman(a), recomputed over resampled pairs.

    Spearman is not a mean of per-pair scores, so each resample draws the same pairs
    for both systems and recomputes both correlations (never an average of per-pair
    differences).

    Args:
        pred_a, pred_b: (n,) similarities from systems A and B for the same n pairs.
        gold: (n,) gold scores.
    Returns: :class:`Delta` in Spearman points (x 100).
    """
    pa, pb, g = (np.asarray(x, dtype=float) for x in (pred_a, pred_b, gold))
    if not (pa.shape == pb.shape == g.shape and g.ndim == 1):
        raise ValueError(
            f"need three 1-D arrays of one length, got {pa.shape}, {pb.shape}, {g.shape}"
        )
    point = spearman(pb, g) - spearman(pa, g)
    idx = _resamples(len(g), n_resamples, seed)
    stats = _rowwise_spearman(pb[idx], g[idx]) - _rowwise_spearman(pa[idx], g[idx])
    return _delta(point, stats, level, 100.0)
