"""Exact search, BM25 and RRF: correctness against references, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers.util import cos_sim, semantic_search

from embedlab.search import BM25, analyze, dense_search, exact_topk, rrf, to_run


@pytest.fixture
def emb():
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, 16, generator=g), torch.randn(101, 16, generator=g)


@pytest.mark.parametrize("chunk", [1, 3, 7, 50, 101, 1000])
def test_exact_topk_matches_brute_force_on_odd_chunks(emb, chunk):
    q, c = emb
    s, i = exact_topk(q, c, k=10, chunk_size=chunk)
    ref_s, ref_i = cos_sim(q, c).topk(10, dim=1)
    assert torch.equal(i, ref_i)
    assert torch.allclose(s, ref_s, atol=1e-6)


def test_exact_topk_matches_sentence_transformers_semantic_search(emb):
    q, c = emb
    s, i = exact_topk(q, c, k=5, chunk_size=13)
    hits = semantic_search(q, c, top_k=5, corpus_chunk_size=13)
    assert [[h["corpus_id"] for h in row] for row in hits] == i.tolist()
    assert np.allclose([[h["score"] for h in row] for row in hits], s.numpy(), atol=1e-6)


def test_exact_topk_dot_product_without_normalisation(emb):
    q, c = emb
    s, i = exact_topk(q, c, k=3, normalize=False)
    ref_s, ref_i = (q @ c.T).topk(3, dim=1)
    assert torch.equal(i, ref_i) and torch.allclose(s, ref_s, atol=1e-5)


def test_ties_keep_lower_index_first():
    c = torch.tensor([[1.0, 0.0]] * 5)
    _, i = exact_topk(torch.tensor([[1.0, 0.0]]), c, k=5, chunk_size=2)
    assert i.tolist() == [[0, 1, 2, 3, 4]]


def test_empty_corpus_is_rejected():
    with pytest.raises(ValueError, match="corpus is empty"):
        exact_topk(torch.ones(2, 4), torch.ones(0, 4), k=1)


def test_k_larger_than_corpus_is_rejected():
    with pytest.raises(ValueError, match="k=11"):
        exact_topk(torch.ones(2, 4), torch.ones(10, 4), k=11)


def test_dimension_mismatch_is_rejected():
    with pytest.raises(ValueError, match="dimension mismatch"):
        exact_topk(torch.ones(2, 4), torch.ones(10, 5), k=1)


def test_nan_embeddings_are_rejected():
    c = torch.ones(10, 4)
    c[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        exact_topk(torch.ones(2, 4), c, k=1)


def test_dense_search_returns_a_run_with_ids(emb):
    q, c = emb
    doc_ids = [f"d{j}" for j in range(len(c))]
    run = dense_search(q.numpy(), c.numpy(), ["a", "b", "c", "d", "e", "f", "g"], doc_ids, k=4)
    best = cos_sim(q, c).argmax(dim=1)
    assert list(run["a"])[0] == doc_ids[int(best[0])]
    assert all(len(h) == 4 for h in run.values())
    with pytest.raises(ValueError, match="ids and embeddings disagree"):
        dense_search(q.numpy(), c.numpy(), ["a"], doc_ids)


def test_to_run_rejects_misaligned_shapes():
    with pytest.raises(ValueError):
        to_run(np.zeros((2, 3)), np.zeros((2, 2), dtype=int), ["a", "b"], ["x", "y", "z"])


def test_bm25_prefers_documents_sharing_rare_terms():
    docs = [
        "the cat sat on the mat",
        "dogs chase cats in parks",
        "quantum chromodynamics of gluons",
    ]
    bm25 = BM25(["c", "d", "q"], docs)
    run = bm25.search(["q1", "q2"], ["gluons in quantum theory", "a cat on a mat"], k=3)
    assert list(run["q1"])[0] == "q"
    assert list(run["q2"])[0] == "c"
    assert all(s > 0 for hits in run.values() for s in hits.values())


def test_bm25_bad_input():
    with pytest.raises(ValueError, match="empty"):
        BM25([], [])
    with pytest.raises(ValueError, match="texts"):
        BM25(["a", "b"], ["only one"])
    with pytest.raises(ValueError, match="k=5"):
        BM25(["a"], ["gluons and quarks"]).search(["q"], ["gluons"], k=5)


def test_rrf_fuses_by_rank_not_score():
    a = {"q": {"x": 100.0, "y": 50.0, "z": 1.0}}
    b = {"q": {"y": 0.9, "z": 0.8, "x": 0.1}}
    fused = rrf([a, b], k=60)
    # x: 1/61 + 1/63, y: 1/62 + 1/61, z: 1/63 + 1/62
    assert list(fused["q"]) == ["y", "x", "z"]
    assert fused["q"]["y"] == pytest.approx(1 / 62 + 1 / 61)
    with pytest.raises(ValueError):
        rrf([])
    with pytest.raises(ValueError):
        rrf([a], k=0)


def test_bm25_analyze_is_what_the_index_matches():
    bm25 = BM25(["a", "b"], ["Vaccines work", "coffee drinkers"])
    assert bm25.analyze("The vaccines, and a vaccine!") == ["vaccin", "vaccin"]
    assert bm25.analyze("the and of") == []  # only stop words: nothing to match
    assert BM25(["a"], ["Vaccines"], stem=False).analyze("Vaccines") == ["vaccines"]
    assert analyze("coffee drinkers") == ["coffe", "drinker"]
    # a query matches exactly the documents sharing one of its analysed tokens
    assert set(bm25.search(["q"], ["vaccine"], k=2)["q"]) == {"a"}


def test_bm25_nbytes_counts_the_sparse_score_matrix():
    # bm25s stores one score per (token, doc) pair, token-major CSR: 4 pairs (cat-a, cat-b,
    # dog-a, fish-c) x (float32 score + int32 doc index) + 4 int64 row pointers (3 tokens + 1)
    bm25 = BM25(["a", "b", "c"], ["cat dog", "cat", "fish"])
    assert bm25.nbytes() == 4 * (4 + 4) + 4 * 8


def _lexsort_reference(q: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k indices ordered by (-score, index), computed row by row in plain Python."""
    s = cos_sim(q, c)
    return torch.tensor(
        [
            sorted(range(c.shape[0]), key=lambda j, r=r: (-float(s[r, j]), j))[:k]
            for r in range(len(q))
        ]
    )


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 40, 10_000])
def test_ties_are_stable_across_chunk_sizes_with_duplicated_documents(chunk):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 8, generator=g)
    corpus = base[torch.randint(0, 6, (40,), generator=g)]  # every doc has copies
    queries = torch.cat([base[:3], torch.randn(2, 8, generator=g)])
    for k in (1, 4, 9, 40):
        _, idx = exact_topk(queries, corpus, k=k, chunk_size=chunk)
        assert torch.equal(idx, _lexsort_reference(queries, corpus, k)), (chunk, k)


def test_all_tied_scores_give_the_lowest_indices_in_order():
    corpus = torch.ones(50, 4)
    for chunk in (1, 7, 50):
        _, idx = exact_topk(torch.ones(2, 4), corpus, k=10, chunk_size=chunk)
        assert idx.tolist() == [list(range(10))] * 2


def test_to_run_drops_faiss_padding_and_rejects_other_bad_indices():
    run = to_run(np.array([[0.9, -np.inf]]), np.array([[1, -1]]), ["q"], ["a", "b"])
    assert run == {"q": {"b": 0.9}}  # -1 is not the last doc
    with pytest.raises(ValueError, match="outside the 2 doc ids"):
        to_run(np.array([[0.9]]), np.array([[2]]), ["q"], ["a", "b"])
    with pytest.raises(ValueError, match="outside"):
        to_run(np.array([[0.9]]), np.array([[-2]]), ["q"], ["a", "b"])


@pytest.mark.parametrize(
    ("qids", "dids", "what"),
    [(["q", "q"], ["a", "b"], "query ids"), (["q", "r"], ["a", "a"], "doc ids")],
)
def test_dense_search_rejects_duplicate_ids(qids, dids, what):
    with pytest.raises(ValueError, match=f"{what} must be unique; 'q'|{what} must be unique; 'a'"):
        dense_search(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), qids, dids, k=2)


def test_rrf_rejects_top_zero_and_nan_scores():
    run = {"q": {"a": 1.0, "b": 0.5}}
    with pytest.raises(ValueError, match="top=0 must be >= 1"):
        rrf([run], top=0)
    with pytest.raises(ValueError, match="NaN score"):
        rrf([run, {"q": {"a": 0.2, "b": float("nan")}}])
    assert list(rrf([run], top=1)["q"]) == ["a"]


@pytest.mark.parametrize("texts", [["", ""], ["the", "and of"]])
def test_bm25_rejects_a_corpus_without_content_words(texts):
    with pytest.raises(ValueError, match="no indexable word"):
        BM25(["a", "b"], texts)


def test_bm25_rejects_duplicate_doc_ids():
    with pytest.raises(ValueError, match="doc ids must be unique"):
        BM25(["a", "a"], ["cats", "dogs"])
