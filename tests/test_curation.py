"""Unit tests for embedlab.curation: weak pairs, noise injection, consistency filtering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedlab.curation import (
    WeakPairs,
    consistency_filter,
    filter_report,
    inject_noise,
    nearest_other,
    out_of_fold_ranks,
    passage_ranks,
    title_abstract_pairs,
)

CORPUS = {f"d{i}": {"title": f"Title {i}", "text": f"Abstract number {i}."} for i in range(10)} | {
    "empty": {"title": "", "text": "no title"},
    "blank": {"title": "T", "text": "  "},
}


def test_title_abstract_pairs_builds_clean_pairs_and_excludes():
    pairs = title_abstract_pairs(CORPUS, exclude={"d3"})
    assert len(pairs) == 9  # 10 docs - d3; "empty" and "blank" skipped
    assert "d3" not in pairs.query_ids
    i = pairs.query_ids.index("d7")
    assert (pairs.queries[i], pairs.passages[i]) == ("Title 7", "Abstract number 7.")
    assert not pairs.noisy.any()
    assert pairs.to_dataset().column_names == ["anchor", "positive"]


def test_title_abstract_pairs_respects_order_and_rejects_bad_input():
    pairs = title_abstract_pairs(CORPUS, doc_ids=["d2", "d1"])
    assert pairs.query_ids == ["d2", "d1"]
    with pytest.raises(ValueError, match="not in the corpus"):
        title_abstract_pairs(CORPUS, doc_ids=["nope"])
    with pytest.raises(ValueError, match="no document left"):
        title_abstract_pairs(CORPUS, doc_ids=["d1"], exclude=["d1"])


def test_weak_pairs_rejects_ragged_columns_and_bad_mask():
    with pytest.raises(ValueError, match="equal lengths"):
        WeakPairs(["q"], ["p", "p2"], ["a"], ["a"])
    pairs = title_abstract_pairs(CORPUS)
    assert pairs.select(np.arange(len(pairs)) < 3).query_ids == ["d0", "d1", "d2"]
    with pytest.raises(ValueError, match="bool array"):
        pairs.select([1, 0, 1])


def test_inject_noise_is_a_seeded_derangement_of_the_chosen_pairs():
    clean = title_abstract_pairs(CORPUS)
    noisy = inject_noise(clean, fraction=0.5, seed=1)
    assert int(noisy.noisy.sum()) == round(0.5 * len(clean))
    assert sorted(noisy.passages) == sorted(clean.passages)  # passages only moved
    assert noisy.queries == clean.queries and not clean.noisy.any()  # input untouched
    assert inject_noise(clean, 0.5, seed=1) == noisy
    assert inject_noise(clean, 0.0).passages == clean.passages


def test_inject_noise_rejects_bad_fraction_and_noisy_input():
    clean = title_abstract_pairs(CORPUS)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            inject_noise(clean, bad)
    with pytest.raises(ValueError, match="leaves 1 pair"):
        inject_noise(clean, 0.1)  # round(0.1 * 10) == 1
    with pytest.raises(ValueError, match="already contain noise"):
        inject_noise(inject_noise(clean, 0.5), 0.5)


def test_passage_ranks_counts_strictly_better_candidates():
    q = torch.eye(3)
    p = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0.5, 0.5]])
    ranks = passage_ranks(q, p)
    # q0: own 1.0, p1 ties (not higher) -> 0; q1: own 0, p2 scores 0.5 -> 1; q2: own 0.5 -> 0
    assert ranks.tolist() == [0, 1, 0]
    extra = torch.tensor([[0.0, 0, 2.0], [2.0, 0, 0]])
    assert passage_ranks(q, p, extra).tolist() == [1, 1, 1]
    assert passage_ranks(q, p, extra, chunk_size=1).tolist() == [1, 1, 1]


def test_passage_ranks_rejects_bad_shapes():
    with pytest.raises(ValueError, match="differ"):
        passage_ranks(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="D=5"):
        passage_ranks(np.ones((3, 4)), np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="2-D"):
        passage_ranks(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        passage_ranks(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match="chunk_size"):
        passage_ranks(np.ones((2, 2)), np.ones((2, 2)), chunk_size=0)


def test_consistency_filter_keeps_top_k():
    assert consistency_filter(np.array([0, 1, 2, 5]), k=2).tolist() == [True, True, False, False]
    assert consistency_filter([0, 1], k=1).tolist() == [True, False]
    with pytest.raises(ValueError, match="k must be"):
        consistency_filter([0, 1], k=0)
    with pytest.raises(ValueError, match="non-negative integers"):
        consistency_filter(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="non-negative integers"):
        consistency_filter(np.array([-1, 0]))


def test_filter_report_precision_recall():
    keep = np.array([True, True, False, False, True])
    noisy = np.array([False, True, True, False, False])
    r = filter_report(keep, noisy)
    assert r["precision"] == 0.5  # removed {2, 3}: 2 is noisy
    assert r["recall"] == 0.5  # noisy {1, 2}: 2 removed
    assert r["clean_kept"] == pytest.approx(2 / 3)
    assert r["noise_before"] == pytest.approx(0.4)
    assert r["noise_after"] == pytest.approx(1 / 3)
    assert r["kept"] == 3
    nothing_removed = filter_report(np.ones(2, bool), np.zeros(2, bool))
    assert math.isnan(nothing_removed["precision"]) and math.isnan(nothing_removed["recall"])


def test_filter_report_rejects_bad_input():
    with pytest.raises(ValueError, match="bool arrays"):
        filter_report(np.array([1, 0]), np.array([True, False]))
    with pytest.raises(ValueError, match="bool arrays"):
        filter_report(np.ones(3, bool), np.ones(2, bool))
    with pytest.raises(ValueError, match="empty"):
        filter_report(np.ones(0, bool), np.ones(0, bool))


def test_nearest_other_never_returns_itself():
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert nearest_other(emb).tolist() == [1, 0, 3, 2]
    with pytest.raises(ValueError, match="at least 2"):
        nearest_other(emb[:1])


def test_inject_noise_hard_share_gives_neighbours_passages():
    clean = title_abstract_pairs(CORPUS)  # 10 pairs, d0..d9
    nearest = np.array([(i + 1) % 10 for i in range(10)])  # pretend d(i+1) is closest to d(i)
    noisy = inject_noise(clean, fraction=0.6, seed=0, nearest=nearest, hard_share=0.5)
    assert noisy.noisy.sum() == 6
    hard = [i for i in range(10) if noisy.passage_ids[i] == clean.passage_ids[nearest[i]]]
    assert len(hard) >= 3  # the hard half (a rotated pair may land on its neighbour too)
    with pytest.raises(ValueError, match="nearest"):
        inject_noise(clean, 0.6, hard_share=0.5)
    with pytest.raises(ValueError, match="own document"):
        inject_noise(clean, 0.6, nearest=np.arange(10), hard_share=1.0)


def test_out_of_fold_ranks_push_noisy_pairs_down_with_a_trained_model():
    """Topic pairs: a model trained on the other fold ranks clean passages above noisy ones."""
    import copy

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from embedlab.negatives import train_contrastive

    topics = [(f"q{t}", f"p{t}") for t in range(8)]  # query word, passage word per topic
    words = ["[UNK]"] + [w for pair in topics for w in pair] + [f"x{i}" for i in range(40)]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    torch.manual_seed(0)
    start = SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=16)], device="cpu")
    rows = [(t, i) for i in range(5) for t in range(8)]  # 5 pairs per topic, own filler word
    clean = WeakPairs([f"{topics[t][0]} x{5 * t + i}" for t, i in rows],
                      [f"{topics[t][1]} x{5 * t + i}" for t, i in rows],
                      [str(k) for k in range(40)], [str(k) for k in range(40)])  # fmt: skip
    noisy = inject_noise(clean, fraction=0.25, seed=0)

    def fit(pairs):
        model = copy.deepcopy(start)
        loss = MultipleNegativesRankingLoss(model, scale=20.0)
        train_contrastive(model, pairs.to_dataset(), loss, batch_size=8, epochs=10, lr=0.1)
        return model

    ranks = out_of_fold_ranks(noisy, fit, n_folds=2, seed=0)
    assert ranks.shape == (40,) and ranks.dtype == np.int64
    assert ranks[noisy.noisy].mean() > ranks[~noisy.noisy].mean() + 3
    with pytest.raises(ValueError, match="n_folds"):
        out_of_fold_ranks(noisy, fit, n_folds=1)
