"""Compression and speed helpers: agreement with sentence-transformers / faiss, and bad input."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from sentence_transformers import quantize_embeddings

from embedlab.compress import (
    bandwidth_bound_qps,
    binarize,
    binary_search_rescore,
    bytes_per_vector,
    dequantize_int8,
    hamming_topk,
    int8_ranges,
    quantize_int8,
    recall_at_k,
    rescore,
    truncate,
    unpack_signs,
)


def unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def emb():
    return unit(7, 20, seed=1), unit(300, 20, seed=2)  # Q=7 queries, N=300 docs, D=20


def test_bytes_per_vector():
    assert [bytes_per_vector(384, p) for p in ("float32", "float16", "int8", "binary")] == [
        1536,
        768,
        384,
        48,
    ]
    assert bytes_per_vector(20, "binary") == 3  # padded to whole bytes


def test_bytes_per_vector_rejects_unknown_precision():
    with pytest.raises(ValueError, match="unknown precision"):
        bytes_per_vector(384, "int4")


def test_int8_matches_sentence_transformers(emb):
    _, docs = emb
    ranges = int8_ranges(docs)
    ours = quantize_int8(docs, ranges)
    theirs = quantize_embeddings(docs, precision="int8", ranges=ranges)
    assert ours.dtype == np.int8 and np.array_equal(ours, theirs)


def test_int8_roundtrip_error_is_below_one_bucket(emb):
    _, docs = emb
    ranges = int8_ranges(docs)
    back = dequantize_int8(quantize_int8(docs, ranges), ranges)
    step = (ranges[1] - ranges[0]) / 255
    assert back.dtype == np.float32
    assert np.all(docs - back >= -1e-6) and np.all(docs - back <= step + 1e-6)


def test_int8_rejects_bad_ranges_and_codes(emb):
    _, docs = emb
    with pytest.raises(ValueError, match="ranges must be"):
        quantize_int8(docs, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="codes must be int8"):
        dequantize_int8(np.zeros((2, 20), dtype=np.float32), int8_ranges(docs))
    with pytest.raises(ValueError, match="must be a 2-D array"):
        int8_ranges(np.zeros(5))


def test_binarize_matches_sentence_transformers_ubinary(emb):
    _, docs = emb
    assert np.array_equal(binarize(docs), quantize_embeddings(docs, precision="ubinary"))
    assert binarize(docs).shape == (300, 3)


def test_unpack_signs_roundtrip(emb):
    _, docs = emb
    signs = unpack_signs(binarize(docs), 20)
    assert np.array_equal(signs, np.where(docs > 0, 1.0, -1.0))
    with pytest.raises(ValueError, match="uint8"):
        unpack_signs(binarize(docs), 40)


def test_hamming_topk_matches_faiss_index_binary_flat(emb):
    q, docs = unit(7, 64, seed=3), unit(300, 64, seed=4)
    qc, dc = binarize(q), binarize(docs)
    dist, idx = hamming_topk(qc, dc, k=300, chunk_size=37)
    index = faiss.IndexBinaryFlat(64)
    index.add(dc)
    ref_dist, _ = index.search(qc, 300)
    assert np.array_equal(dist, ref_dist)  # same distances; tie order may differ
    manual = [
        [bin(a ^ b).count("1") for a, b in zip(qc[0].tolist(), dc[j].tolist(), strict=True)]
        for j in idx[0]
    ]
    assert [sum(m) for m in manual] == dist[0].tolist()


def test_hamming_topk_rejects_float_codes_and_bad_k(emb):
    q, docs = emb
    with pytest.raises(ValueError, match="uint8"):
        hamming_topk(q, docs, k=3)
    with pytest.raises(ValueError, match="k=301"):
        hamming_topk(binarize(q), binarize(docs), k=301)


def test_rescore_with_float_docs_equals_exact_on_candidates(emb):
    q, docs = emb
    cand = np.tile(np.arange(300), (7, 1))  # all docs are candidates -> exact search
    scores, idx = rescore(q, cand, docs, k=5)
    ref = np.argsort(-(q @ docs.T), axis=1)[:, :5]
    assert np.array_equal(idx, ref)
    assert np.allclose(scores, np.take_along_axis(q @ docs.T, ref, axis=1), atol=1e-6)


def test_rescore_rejects_too_few_candidates(emb):
    q, docs = emb
    with pytest.raises(ValueError, match="candidates must be"):
        rescore(q, np.zeros((7, 3), dtype=int), docs, k=5)


def test_binary_search_rescore_matches_sentence_transformers_recipe():
    from sentence_transformers.util.quantization import semantic_search_faiss

    q, docs = unit(5, 64, seed=5), unit(400, 64, seed=6)
    _, idx = binary_search_rescore(q, binarize(docs), k=10, multiplier=4)
    hits, _ = semantic_search_faiss(
        q, binarize(docs), corpus_precision="ubinary", top_k=10, rescore_multiplier=4
    )
    theirs = [{h["corpus_id"] for h in row} for row in hits]
    overlap = np.mean([len(set(idx[i]) & theirs[i]) / 10 for i in range(5)])
    assert overlap >= 0.9  # equal up to ties in the Hamming cut-off


def test_binary_search_rescore_rejects_bad_multiplier(emb):
    q, docs = emb
    with pytest.raises(ValueError, match="multiplier"):
        binary_search_rescore(q, binarize(docs), k=5, multiplier=0)


def test_truncate_renormalises_and_keeps_prefix(emb):
    _, docs = emb
    t = truncate(docs, 8)
    assert t.shape == (300, 8)
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-6)
    assert np.allclose(t * np.linalg.norm(docs[:, :8], axis=1, keepdims=True), docs[:, :8])
    with pytest.raises(ValueError, match="dims=21"):
        truncate(docs, 21)


def test_recall_at_k():
    exact = np.array([[0, 1, 2], [3, 4, 5]])
    assert recall_at_k(exact, exact, k=3) == 1.0
    assert recall_at_k(np.array([[2, 9, 9], [9, 9, 9]]), exact, k=3) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="k=4"):
        recall_at_k(exact, exact, k=4)


def test_bandwidth_bound_qps():
    assert bandwidth_bound_qps(1000, 1536, 1.536e9) == pytest.approx(1000)
    with pytest.raises(ValueError, match="n >= 1"):
        bandwidth_bound_qps(0, 1536, 1e9)


def test_interleaved_times_takes_turns_and_medians(monkeypatch):
    from embedlab import common, compress

    order = []
    clock = iter([0.0, 1.0, 1.0, 3.0, 3.0, 4.0, 4.0, 9.0, 9.0, 10.0, 10.0, 12.0])
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(clock))
    out = compress.interleaved_times(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    )
    assert order == ["a", "b"] * 3
    assert out == {"a": 1.0, "b": 2.0}  # a: 1, 1, 1; b: 2, 5, 2
    clock = iter([0.0, 1.0, 1.0, 3.0, 3.0, 4.0, 4.0, 9.0])
    samples = compress.interleaved_samples({"a": lambda: None, "b": lambda: None}, repeats=2)
    assert samples == {"a": [1.0, 1.0], "b": [2.0, 5.0]}  # every run, in order
    with pytest.raises(ValueError, match="repeats"):
        compress.interleaved_times({"a": lambda: None}, repeats=0)
