"""Unit tests for embedlab.rerank (re-ranking, timing, slope fit, training input checks)."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.rerank import (
    fit_cross_encoder,
    loglog_slope,
    rerank,
    top_n_pairs,
)


class LengthScorer:
    """A fake cross-encoder: score = length of the document text (so order is known)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.calls.append(len(pairs))
        return np.array([float(len(d)) for _, d in pairs])


QUERIES = {"q1": "first query", "q2": "second query"}
DOCS = {"a": "x", "b": "xxx", "c": "xx", "d": "xxxx"}
RUN = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7}, "q2": {"d": 0.5, "a": 0.4}}


def test_top_n_pairs_keeps_first_stage_order_and_cut():
    assert top_n_pairs(QUERIES, RUN, DOCS, 2) == [
        ("q1", "a"),
        ("q1", "b"),
        ("q2", "d"),
        ("q2", "a"),
    ]


def test_rerank_rescored_with_one_batched_call():
    scorer = LengthScorer()
    out = rerank(scorer, QUERIES, RUN, DOCS, top_n=2)
    assert scorer.calls == [4]  # all pairs of all queries in one predict call
    assert out == {"q1": {"a": 1.0, "b": 3.0}, "q2": {"d": 4.0, "a": 1.0}}
    best_q1 = max(out["q1"], key=out["q1"].get)
    assert best_q1 == "b"  # the re-ranker, not the first stage, decides the order


def test_rerank_top_n_larger_than_run_keeps_all_hits():
    out = rerank(LengthScorer(), QUERIES, RUN, DOCS, top_n=10)
    assert {q: len(h) for q, h in out.items()} == {"q1": 3, "q2": 2}


@pytest.mark.parametrize(
    ("queries", "run", "docs", "top_n", "match"),
    [
        (QUERIES, RUN, DOCS, 0, "top_n"),
        (QUERIES, {}, DOCS, 2, "empty"),
        ({"q1": "only one"}, RUN, DOCS, 2, "no query text"),
        (QUERIES, RUN, {"a": "x"}, 2, "no text"),
    ],
)
def test_rerank_bad_input(queries, run, docs, top_n, match):
    with pytest.raises(ValueError, match=match):
        rerank(LengthScorer(), queries, run, docs, top_n=top_n)


def test_loglog_slope_recovers_power_law():
    n = np.array([8, 16, 32, 64])
    slope, c = loglog_slope(n, 0.003 * n**2.0)
    assert slope == pytest.approx(2.0) and c == pytest.approx(0.003)
    assert loglog_slope(n, 5e-4 * n)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("sizes", "seconds", "match"),
    [
        ([8, 16], [1.0], "equal length"),
        ([8], [1.0], "two distinct"),
        ([8, 8], [1.0, 2.0], "two distinct"),
        ([0, 16], [1.0, 2.0], "> 0"),
        ([8, 16], [1.0, -2.0], "> 0"),
    ],
)
def test_loglog_slope_bad_input(sizes, seconds, match):
    with pytest.raises(ValueError, match=match):
        loglog_slope(sizes, seconds)


def test_fit_helpers_reject_bad_training_data():
    from datasets import Dataset

    no_label = Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"]})
    empty = Dataset.from_dict({"sentence1": [], "sentence2": [], "label": []})
    with pytest.raises(ValueError, match="label"):
        fit_cross_encoder(object(), no_label)
    with pytest.raises(ValueError, match="empty"):
        fit_cross_encoder(object(), empty)
    ok = Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "label": [1.0]})
    with pytest.raises(ValueError, match="loss"):
        fit_cross_encoder(object(), ok, loss="hinge")


def fake_beir():
    from types import SimpleNamespace

    return SimpleNamespace(
        queries={"c1": "claim one", "c2": "claim two"},
        qrels={"c1": {"d1": 1}, "c2": {"d2": 1, "d3": 1}},
        doc_ids=["d1", "d2", "d3", "d4", "d5"],
        doc_texts=["t1", "t2", "t3", "t4", "t5"],
    )


def test_scifact_training_pairs_labels_and_hard_negatives():
    from embedlab.rerank import scifact_training_pairs

    first = {"c1": {"d4": 3.0, "d1": 2.0, "d5": 1.0}, "c2": {"d1": 9.0, "d2": 8.0, "d4": 1.0}}
    ds = scifact_training_pairs(fake_beir(), first, negatives=1, seed=0)
    rows = sorted(zip(ds["sentence1"], ds["sentence2"], ds["label"], strict=True))
    assert rows == [
        ("claim one", "t1", 1.0),
        ("claim one", "t4", 0.0),  # best-ranked hit that c1 does not cite
        ("claim two", "t1", 0.0),
        ("claim two", "t2", 1.0),
        ("claim two", "t3", 1.0),  # cited even though stage 1 missed it
    ]


def test_scifact_training_pairs_bad_input():
    from embedlab.rerank import scifact_training_pairs

    with pytest.raises(ValueError, match="negatives"):
        scifact_training_pairs(fake_beir(), {"c1": {}, "c2": {}}, negatives=-1)
    with pytest.raises(ValueError, match="no first-stage hits"):
        scifact_training_pairs(fake_beir(), {"c1": {"d1": 1.0}})


def test_zscore_and_interpolate():
    from embedlab.rerank import interpolate, zscore_per_query

    first = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    second = {"q": {"a": 0.0, "b": 5.0, "c": 1.0}}
    z = zscore_per_query(first)["q"]
    assert z["a"] == pytest.approx(-z["c"]) and z["b"] == 0
    assert zscore_per_query({"q": {"a": 1.0, "b": 1.0}})["q"] == {"a": 0.0, "b": 0.0}
    keep = interpolate(first, second, 0.0)["q"]
    assert max(keep, key=keep.get) == "a"  # weight 0: stage 1's order
    swap = interpolate(first, second, 1.0)["q"]
    assert max(swap, key=swap.get) == "b"  # weight 1: the re-ranker's order
    with pytest.raises(ValueError, match="weight"):
        interpolate(first, second, 1.5)
    with pytest.raises(ValueError, match="absent from stage 1"):
        interpolate(first, {"q": {"zz": 1.0}}, 0.5)


def test_choose_weight_picks_the_better_stage():
    from embedlab.rerank import choose_weight

    first = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    second = {"q": {"a": 0.0, "b": 5.0, "c": 1.0}}
    weight, table = choose_weight(first, second, {"q": {"b": 1}}, grid=[0.0, 1.0])
    # weight 0 keeps stage 1's order a, b, c: the relevant b at rank 2, nDCG 1/log2(3)
    assert weight == 1.0 and table == {0.0: pytest.approx(100 / np.log2(3)), 1.0: 100.0}


def test_split_train_claims_is_seeded_and_disjoint():
    from embedlab.rerank import split_train_claims

    fit, held = split_train_claims([str(i) for i in range(10)], 3, seed=0)
    assert len(held) == 3 and not set(fit) & set(held) and len(fit) == 7
    assert (fit, held) == split_train_claims([str(i) for i in range(10)][::-1], 3, seed=0)
    with pytest.raises(ValueError, match="heldout"):
        split_train_claims(["a", "b"], 2, seed=0)
