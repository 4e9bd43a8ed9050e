"""Metrics: checked against sentence-transformers' InformationRetrievalEvaluator and by hand."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import spearmanr
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from embedlab.evaluate import (
    ndcg_at_10,
    ndcg_at_10_per_query,
    pair_cosine,
    retrieval_per_query,
    retrieval_scores,
    spearman,
    sts_spearman,
)


def _random_case(seed: int, n_queries: int = 40, n_docs: int = 60):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels = {f"q{i}": {d: 1 for d in rng.sample(docs, rng.randint(1, 5))} for i in range(n_queries)}
    run = {q: {d: round(rng.random(), 2) for d in rng.sample(docs, 30)} for q in qrels}
    return docs, qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sentence_transformers_ir_evaluator(seed):
    docs, qrels, run = _random_case(seed)
    ev = InformationRetrievalEvaluator(
        queries={q: q for q in qrels},
        corpus={d: d for d in docs},
        relevant_docs={q: set(r) for q, r in qrels.items()},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        map_at_k=[10],
        precision_recall_at_k=[1, 10, 30],
        accuracy_at_k=[1],
        show_progress_bar=False,
    )
    results = [[{"corpus_id": d, "score": s} for d, s in run[q].items()] for q in ev.queries_ids]
    ref = ev.compute_metrics(results)
    ours = retrieval_scores(run, qrels, ks=(10, 30))
    assert ours["ndcg@10"] == pytest.approx(ref["ndcg@k"][10], abs=1e-9)
    assert ours["mrr@10"] == pytest.approx(ref["mrr@k"][10], abs=1e-9)
    assert ours["recall@10"] == pytest.approx(ref["recall@k"][10], abs=1e-9)
    assert ours["recall@30"] == pytest.approx(ref["recall@k"][30], abs=1e-9)
    # with at most 5 relevant docs and k=10, both MAP conventions coincide
    assert ours["map@10"] == pytest.approx(ref["map@k"][10], abs=1e-9)


def test_graded_ndcg_by_hand():
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"b": 0.9, "x": 0.8, "a": 0.7}}
    m = retrieval_per_query(run, qrels, k=3)["q"]
    dcg = 1 / math.log2(2) + 0 + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg@3"] == pytest.approx(dcg / idcg)
    assert m["mrr@3"] == 1.0
    assert m["recall@3"] == 1.0
    assert m["map@3"] == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_missing_query_in_run_scores_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    scores = retrieval_scores({"q1": {"a": 1.0}}, qrels)
    assert scores["ndcg@10"] == 0.5 and scores["mrr@10"] == 0.5


def test_relevant_doc_beyond_k_does_not_count():
    run = {"q": {f"d{i}": 1 - i / 100 for i in range(20)}}
    scores = retrieval_scores(run, {"q": {"d15": 1}}, ks=(10,))
    assert scores == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "map@10": 0.0}


@pytest.mark.parametrize(
    "bad",
    [{}, {"q": {}}, {"q": {"d": "high"}}, {"q": {"d": -1}}, ["q", "d"], {"q": ["d"]}],
)
def test_malformed_qrels_are_rejected(bad):
    with pytest.raises(ValueError):
        retrieval_scores({"q": {"d": 1.0}}, bad)


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be"):
        retrieval_scores({"q": {"d": 1.0}}, {"q": {"d": 1}}, ks=(0,))


def test_spearman_matches_scipy_and_validates():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        spearman([1.0, float("nan")], [1.0, 2.0])


def test_sts_spearman_uses_cosine():
    rng = np.random.default_rng(1)
    e1 = rng.normal(size=(30, 8))
    e2 = e1 + rng.normal(scale=np.linspace(0.01, 3, 30)[:, None], size=(30, 8))
    gold = np.linspace(5, 0, 30)
    cos = (e1 * e2).sum(1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    assert sts_spearman(e1, e2, gold) == pytest.approx(spearmanr(cos, gold).statistic)
    assert np.allclose(pair_cosine(e1, 3 * e1), 1.0)
    with pytest.raises(ValueError, match="same shape"):
        pair_cosine(e1, e2[:, :4])
    bad = e2.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pair_cosine(e1, bad)


def test_delta_mean_matches_a_known_gap_and_its_interval_shrinks_with_items():
    from embedlab.evaluate import delta_mean

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 400)
    d = delta_mean(a, a + 0.05 + rng.normal(0, 0.01, 400))
    assert d.delta == pytest.approx(5.0, abs=0.2) and d.low > 4 and d.high < 6
    noisy = delta_mean(a, rng.uniform(0, 1, 400))
    assert noisy.low < 0 < noisy.high and noisy.verdict() == "not reproduced"
    wide = delta_mean(a[:40], a[:40] + rng.normal(0, 0.3, 40))
    assert (wide.high - wide.low) > (d.high - d.low)


def test_delta_spearman_recomputes_the_correlation_per_resample():
    from embedlab.evaluate import delta_spearman, spearman

    rng = np.random.default_rng(1)
    gold = rng.uniform(0, 5, 300)
    good, bad = gold + rng.normal(0, 0.5, 300), gold + rng.normal(0, 3, 300)
    d = delta_spearman(bad, good, gold)
    assert d.delta == pytest.approx(100 * (spearman(good, gold) - spearman(bad, gold)))
    assert d.low > 0 and d.verdict() == "direction holds"
    assert delta_spearman(good, bad, gold).verdict(direction=-1) == "direction holds"


def test_bootstrap_deltas_reject_bad_input():
    from embedlab.evaluate import delta_mean, delta_spearman

    with pytest.raises(ValueError, match="equal length"):
        delta_mean([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="n_resamples"):
        delta_mean([1.0, 2.0], [1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="at least 2"):
        delta_mean([1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        delta_mean([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="one length"):
        delta_spearman([1.0, 2.0], [1.0, 2.0], [1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_at_10_is_the_retrieval_scores_number_in_points(seed):
    _, qrels, run = _random_case(seed)
    assert ndcg_at_10(run, qrels) == 100 * retrieval_scores(run, qrels)["ndcg@10"]
    per_query = retrieval_per_query(run, qrels)
    qids = sorted(qrels, reverse=True)
    expected = [per_query[q]["ndcg@10"] for q in qids]
    assert ndcg_at_10_per_query(run, qrels, qids).tolist() == expected


def test_ndcg_at_10_by_hand():
    # q1: relevant d2 at rank 2 -> 1/log2(3); q2: absent from the run -> 0; q3: perfect
    run = {"q1": {"d1": 0.9, "d2": 0.8}, "q3": {"d5": 1.0}}
    qrels = {"q1": {"d2": 1}, "q2": {"d3": 1}, "q3": {"d5": 2}}
    assert ndcg_at_10_per_query(run, qrels).tolist() == [1 / math.log2(3), 0.0, 1.0]
    assert ndcg_at_10(run, qrels) == pytest.approx(100 * (1 / math.log2(3) + 1) / 3)
    with pytest.raises(ValueError, match="'q9' has no qrels"):
        ndcg_at_10_per_query(run, qrels, ["q1", "q9"])
