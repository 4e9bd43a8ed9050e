"""Helpers of notebook 06: pairs, CE gradient, false negatives, training, memory, nDCG."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from embedlab.data import Beir
from embedlab.negatives import (
    ce_logit_grad,
    duplicate_collisions,
    false_negative_mask,
    holdout_queries,
    ndcg_at_10,
    ndcg_per_query,
    pairs_from_beir,
    peak_memory_supported,
    peak_rss_mb,
    train_contrastive,
)

WORDS = "cats dogs fish birds run swim fly bark meow sing the a".split()


@pytest.fixture
def beir() -> Beir:
    corpus = {
        "d1": {"title": "Cats", "text": "cats meow"},
        "d2": {"title": "Dogs", "text": "dogs bark"},
        "d3": {"title": "Fish", "text": "fish swim"},
        "d4": {"title": "Birds", "text": "birds fly sing"},
    }
    queries = {"q1": "cats", "q2": "dogs", "q3": "fish birds"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1, "d4": 1}}
    return Beir("toy", "test", corpus, queries, qrels)


@pytest.fixture
def static_model():
    """A tiny StaticEmbedding model over a whitespace word vocabulary (no download)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {w: i for i, w in enumerate(["[UNK]", *WORDS, "Cats", "Dogs", "Fish", "Birds"])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    torch.manual_seed(0)
    return SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=8)], device="cpu")


def test_pairs_from_beir_one_row_per_judged_pair(beir):
    ds = pairs_from_beir(beir)
    assert ds.column_names == ["anchor", "positive"]
    assert len(ds) == 4
    assert ds["anchor"] == ["cats", "dogs", "fish birds", "fish birds"]
    assert ds["positive"][0] == "Cats cats meow"


def test_pairs_from_beir_rejects_empty_qrels(beir):
    empty = Beir("toy", "test", beir.corpus, {}, {})
    with pytest.raises(ValueError, match="no qrels"):
        pairs_from_beir(empty)


@pytest.mark.parametrize("shape", [(4, 4), (3, 7)])
def test_ce_logit_grad_matches_autograd(shape):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, shape[1], (shape[0],), generator=g)
    F.cross_entropy(logits, labels).backward()
    assert torch.allclose(ce_logit_grad(logits.detach(), labels), logits.grad, atol=1e-12)


def test_ce_logit_grad_rows_sum_to_zero():
    logits = torch.randn(5, 5)
    grad = ce_logit_grad(logits, torch.arange(5))
    assert torch.allclose(grad.sum(dim=1), torch.zeros(5), atol=1e-7)
    assert (grad.diagonal() < 0).all()  # gradient descent raises every positive logit


def test_ce_logit_grad_rejects_bad_shapes_and_labels():
    with pytest.raises(ValueError, match=r"\(M, C\)"):
        ce_logit_grad(torch.zeros(4), torch.arange(4))
    with pytest.raises(ValueError, match="labels must lie"):
        ce_logit_grad(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_false_negative_mask_marks_repeated_anchor_or_positive():
    mask = false_negative_mask(["a", "b", "a", "c"], ["x", "y", "z", "y"])
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 2] = expected[2, 0] = True  # same anchor
    expected[1, 3] = expected[3, 1] = True  # same positive
    assert torch.equal(mask, expected)


def test_false_negative_mask_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="M >= 1"):
        false_negative_mask(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="M >= 1"):
        false_negative_mask([], [])


def test_duplicate_collisions_counts_repeats_within_batches():
    texts = ["a", "b", "a", "a", "c", "b"]
    assert duplicate_collisions([[0, 1, 2, 3], [4, 5]], texts) == 2
    assert duplicate_collisions([[0, 1], [2, 4], [3, 5]], texts) == 0


def test_duplicate_collisions_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="outside"):
        duplicate_collisions([[0, 9]], ["a", "b"])


def test_train_contrastive_changes_weights(static_model, beir):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    ds = pairs_from_beir(beir)
    loss = MultipleNegativesRankingLoss(static_model, scale=20.0)
    before = static_model[0].embedding.weight.detach().clone()
    seconds = train_contrastive(static_model, ds, loss, batch_size=2, epochs=3, lr=0.1)
    assert seconds > 0
    assert not torch.equal(before, static_model[0].embedding.weight.detach())


def test_train_contrastive_rejects_bad_batch_size_and_lr(static_model, beir):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    ds = pairs_from_beir(beir)
    loss = MultipleNegativesRankingLoss(static_model)
    with pytest.raises(ValueError, match="batch_size"):
        train_contrastive(static_model, ds, loss, batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        train_contrastive(static_model, ds, loss, batch_size=99)
    with pytest.raises(ValueError, match="lr"):
        train_contrastive(static_model, ds, loss, batch_size=2, lr=0)


class _Topics:
    """A fake encoder: a text's vector counts the topic words it holds (cats/dogs/fish/birds)."""

    def __init__(self, shuffle: bool = False) -> None:
        self.topics = ["cats", "dogs", "fish", "birds"]
        if shuffle:  # queries land on the wrong topic
            self.topics = self.topics[1:] + self.topics[:1]

    def encode(self, texts, **kwargs):
        import numpy as np

        v = np.array([[t.lower().split().count(w) for w in self.topics] for t in texts], float)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def test_ndcg_per_query_scores_each_query_in_order(beir):
    """q1 and q2 find their one abstract first; q3 ("fish birds") finds both of its two."""
    assert ndcg_per_query(_Topics(), beir).tolist() == [1.0, 1.0, 1.0]
    assert ndcg_at_10(_Topics(), beir) == 100.0


def test_holdout_queries_splits_queries_and_keeps_dev_docs(beir):
    train, dev = holdout_queries(beir, n_heldout=1, n_distractors=1, seed=0)
    assert sorted(train.queries) + sorted(dev.queries) != [] and len(dev.queries) == 1
    assert set(train.queries).isdisjoint(dev.queries)
    assert set(train.queries) | set(dev.queries) == set(beir.queries)
    (q,) = dev.queries
    assert set(beir.qrels[q]) <= set(dev.corpus) and len(dev.corpus) == len(beir.qrels[q]) + 1
    assert train.corpus == beir.corpus and dev.split == "test-dev"
    with pytest.raises(ValueError, match="n_heldout"):
        holdout_queries(beir, n_heldout=3)


def test_ndcg_at_10_rejects_empty_queries(static_model, beir):
    with pytest.raises(ValueError, match="queries"):
        ndcg_at_10(static_model, Beir("toy", "test", beir.corpus, {}, {}))


@pytest.mark.skipif(not peak_memory_supported(), reason="needs Linux /proc")
def test_peak_rss_mb_sees_a_large_temporary_allocation():
    def allocate() -> int:
        x = torch.ones(64, 1024, 1024)  # 256 MiB, freed on return
        return int(x[0, 0, 0])

    result, mb = peak_rss_mb(allocate)
    assert result == 1
    assert 200 < mb < 400


def test_peak_rss_mb_rejects_non_callable():
    with pytest.raises(ValueError, match="callable"):
        peak_rss_mb(42)
