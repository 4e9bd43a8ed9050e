"""MTEB-style benchmark: metrics on synthetic data, bad input, and a real-data smoke run."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from embedlab import benchmark as bm
from embedlab.benchmark import benchmark


def one_hot_encoder(vocab: dict[str, int]):
    """Bag of words over a fixed vocabulary: a transparent, deterministic encoder."""

    def enc(texts, role):
        out = np.zeros((len(texts), len(vocab) + 1), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, vocab.get(w, len(vocab))] += 1
        return out

    return enc


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="unknown task"):
        benchmark(lambda t, r: np.ones((len(t), 2)), ["STS-B", "MS MARCO"])
    with pytest.raises(ValueError, match="no tasks"):
        bm.check_tasks([])


def test_wrong_dimension_is_rejected():
    calls = []

    def drifting(texts, role):
        calls.append(1)
        return np.ones((len(texts), 4 if len(calls) == 1 else 5), dtype=np.float32)

    enc = bm._same_dim(drifting)
    enc(["a"], "query")
    with pytest.raises(ValueError, match="D=5"):
        enc(["b"], "passage")
    with pytest.raises(ValueError, match="shape"):
        bm.checked_encode(lambda t, r: np.ones((len(t) + 1, 3)), ["a"], "query", None)
    with pytest.raises(ValueError, match="role"):
        bm.checked_encode(lambda t, r: np.ones((1, 3)), ["a"], "keys", None)


def test_empty_qrels_are_rejected():
    beir = SimpleNamespace(qrels={}, queries={}, query_ids=[], doc_ids=["d"], doc_texts=["x"])
    with pytest.raises(ValueError, match="empty qrels"):
        bm.score_retrieval(lambda t, r: np.ones((len(t), 2)), beir)


def test_retrieval_scores_perfect_encoder_100():
    beir = SimpleNamespace(
        qrels={"q1": {"d1": 1}, "q2": {"d2": 1}},
        queries={"q1": "apple", "q2": "banana"},
        query_ids=["q1", "q2"],
        doc_ids=["d1", "d2", "d3"],
        doc_texts=["apple pie", "banana bread", "cherry"],
    )
    enc = one_hot_encoder({"apple": 0, "banana": 1, "cherry": 2})
    assert bm.score_retrieval(enc, beir) == pytest.approx(100.0)


def test_pair_classification_ap():
    enc = one_hot_encoder({"a": 0, "b": 1, "c": 2})
    s1, s2 = ["a", "b", "a", "c"], ["a", "b", "c", "a"]
    assert bm.score_pairs(enc, s1, s2, [True, True, False, False]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="both positive and negative"):
        bm.score_pairs(enc, s1, s2, [True] * 4)


def test_classification_and_clustering_on_separable_data():
    enc = one_hot_encoder({"cat": 0, "dog": 1})
    texts = ["cat"] * 10 + ["dog"] * 10
    labels = ["c"] * 10 + ["d"] * 10
    assert bm.score_classification(enc, (texts, labels), (texts, labels)) == 100.0
    assert bm.score_clustering(enc, texts, labels) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="two distinct labels"):
        bm.score_clustering(enc, texts, ["c"] * 20)


def test_clustering_v_measure_by_hand():
    # 3 "cat" points and 1 "dog" point: k-means (k=2) splits {1, 2, 3} | {4}; labels a a b b.
    # homogeneity 1 - H(C|K)/H(C) = 1 - 0.75 H(2/3, 1/3) = 0.3113, completeness
    # 1 - H(K|C)/H(K) = 1 - 0.5 / H(3/4, 1/4) = 0.3837, V = 2hc / (h + c) = 0.3437
    enc = one_hot_encoder({"cat": 0, "dog": 1})
    score = bm.score_clustering(enc, ["cat", "cat", "cat", "dog"], ["a", "a", "b", "b"])
    assert score == pytest.approx(34.37, abs=0.01)


def test_tfidf_encoder_requires_texts():
    with pytest.raises(ValueError):
        bm.tfidf_encoder([])


@pytest.mark.skipif(not os.environ.get("EMBEDLAB_DATA_DIR"), reason="needs EMBEDLAB_DATA_DIR")
def test_tfidf_on_real_sts_and_genre(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROFILE", "fast")
    from embedlab.data import load_stsb

    train = load_stsb("train")
    enc = bm.tfidf_encoder(list(train["sentence1"]) + list(train["sentence2"]))
    scores = benchmark(enc, ["STS-B", "STS-B-genre", "STS-B-genre-clusters"])
    assert 50 < scores["STS-B"] < 80
    assert scores["STS-B-genre"] > 70  # genres differ strongly in vocabulary
    # 47.6 here (fast profile); random clusters, or texts misaligned with their genre
    # labels, score near 0
    assert scores["STS-B-genre-clusters"] > 25


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=300)
    mean, lo, hi = bm.paired_bootstrap(a + 0.05, a)
    assert mean == pytest.approx(0.05) and lo == pytest.approx(0.05) and hi == pytest.approx(0.05)
    noisy = a + rng.normal(scale=0.3, size=300)
    mean, lo, hi = bm.paired_bootstrap(noisy, a)
    assert lo < mean < hi and hi - lo > 0.03
    with pytest.raises(ValueError, match="equal length"):
        bm.paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        bm.paired_bootstrap([], [])


def test_task_rows_follow_the_profile(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROFILE", "fast")
    assert bm.TASKS["STS-B"].rows == 200 and bm.TASKS["STS-B-genre"].rows == 400
    assert bm.TASKS["SciFact"].fast_rows == 50  # the older name notebook 09 reads
    assert bm._sample(1000, bm.TASKS["STS-B"].rows) == bm._sample(1000, 200)
    assert len(bm._sample(1000, 200)) == 200 and bm._sample(5, 200) == [0, 1, 2, 3, 4]
    monkeypatch.setenv("EMBEDLAB_PROFILE", "full")
    assert bm.TASKS["STS-B"].rows is None and bm.TASKS["SciFact"].fast_rows is None
    assert bm._sample(1000, bm.TASKS["STS-B"].rows) == list(range(1000))
