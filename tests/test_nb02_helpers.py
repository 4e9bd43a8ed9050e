"""Helpers of notebook 02: paraphrase mining and top-k comparison (search.py)."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.util import paraphrase_mining_embeddings, semantic_search

from embedlab.search import exact_topk, hits_to_tensors, mine_pairs, same_topk


@pytest.fixture
def emb():
    return torch.randn(60, 12, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("chunk", [1, 7, 60, 1000])
@pytest.mark.parametrize("top_k", [1, 3, 59])
def test_mine_pairs_matches_sentence_transformers(emb, chunk, top_k):
    ours = mine_pairs(emb, top_k=top_k, chunk_size=chunk)
    ref = paraphrase_mining_embeddings(emb, top_k=top_k, query_chunk_size=chunk)
    assert [(i, j) for _, i, j in ours] == [(i, j) for _, i, j in ref]
    assert all(abs(a[0] - b[0]) < 1e-5 for a, b in zip(ours, ref, strict=True))


def test_mine_pairs_finds_planted_duplicate(emb):
    e = emb.clone()
    e[41] = e[7] * 3.0  # same direction: cosine 1
    score, i, j = mine_pairs(e, top_k=2)[0]
    assert (i, j) == (7, 41) and score == pytest.approx(1.0, abs=1e-5)
    assert all(a < b for _, a, b in mine_pairs(e, top_k=2))


def test_mine_pairs_all_pairs_when_top_k_is_n_minus_1(emb):
    pairs = mine_pairs(emb[:10], top_k=9)
    assert len(pairs) == 45 and len({(i, j) for _, i, j in pairs}) == 45
    assert [s for s, _, _ in pairs] == sorted((s for s, _, _ in pairs), reverse=True)


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (torch.randn(1, 4), {}, "at least 2"),
        (torch.randn(5, 4), {"top_k": 5}, "top_k=5"),
        (torch.randn(5, 4), {"top_k": 0}, "top_k=0"),
        (torch.randn(5, 4), {"top_k": 2, "chunk_size": 0}, "chunk_size"),
        (torch.randn(5), {}, "2-D"),
    ],
)
def test_mine_pairs_bad_input(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mine_pairs(x, **kwargs)


def test_hits_to_tensors_round_trips_semantic_search(emb):
    q, c = emb[:5], emb[5:]
    s, i = hits_to_tensors(semantic_search(q, c, top_k=4))
    ref_s, ref_i = exact_topk(q, c, 4)
    assert s.shape == i.shape == (5, 4) and i.dtype == torch.long
    assert torch.equal(i, ref_i) and torch.allclose(s, ref_s, atol=1e-6)


@pytest.mark.parametrize(
    "hits",
    [[], [[]], [[{"corpus_id": 0, "score": 1.0}], []], [[{"corpus_id": 0}]], [[{"id": 0}]]],
)
def test_hits_to_tensors_bad_input(hits):
    with pytest.raises(ValueError):
        hits_to_tensors(hits)


def test_same_topk_accepts_identical_and_tied_swaps():
    s = torch.tensor([[0.9, 0.5, 0.5, 0.1]])
    i = torch.tensor([[3, 1, 2, 0]])
    assert same_topk((s, i), (s, i))
    assert same_topk((s, i), (s, torch.tensor([[3, 2, 1, 0]])))  # tie at 0.5 swapped
    assert same_topk((s, i), (s + 1e-7, i))


def test_same_topk_rejects_real_differences():
    s = torch.tensor([[0.9, 0.5, 0.3, 0.1]])
    i = torch.tensor([[3, 1, 2, 0]])
    assert not same_topk((s, i), (s, torch.tensor([[3, 2, 1, 0]])))  # untied swap
    assert not same_topk((s, i), (s + 0.01, i))  # different scores
    # a tie at the cut-off may hold different ids (the tie continues past k)
    t = torch.tensor([[0.9, 0.5, 0.3, 0.3]])
    assert same_topk((t, i), (t, torch.tensor([[3, 1, 2, 7]])))


def test_same_topk_bad_input():
    s, i = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="shape"):
        same_topk((s, i), (s[:, :2], i[:, :2]))
    with pytest.raises(ValueError, match="shape"):
        same_topk((s[0], i[0]), (s[0], i[0]))
