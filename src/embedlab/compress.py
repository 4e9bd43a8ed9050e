"""Compressing embeddings and measuring the cost of search.

Shapes: Q queries, N corpus vectors, D embedding dimension, B = ceil(D / 8) bytes of a
packed binary code, k hits per query. Embeddings are float32 rows, usually L2-normalised.

What is here, and the production equivalent of each piece:

- scalar (int8) quantization with per-dimension ranges: ``sentence_transformers.
  quantize_embeddings(precision="int8")``, faiss ``IndexScalarQuantizer`` (``"SQ8"``);
- binary codes (one sign bit per dimension), Hamming top-k and float rescoring:
  ``quantize_embeddings(precision="ubinary")``, faiss ``IndexBinaryFlat``,
  ``sentence_transformers.util.quantization.semantic_search_faiss(rescore=True)``;
- Matryoshka-style truncation: ``SentenceTransformer(..., truncate_dim=d)``;
- speed: workloads timed in turns and the bandwidth bound of an exact scan (no
  production equivalent; benchmark suites such as ann-benchmarks do this).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from embedlab.common import elapsed, finite_matrix

PRECISIONS = {"float32": 4.0, "float16": 2.0, "int8": 1.0, "binary": 1 / 8}


def bytes_per_vector(dim: int, precision: str) -> float:
    """Storage of one D-dim vector: 4D (float32), 2D (float16), D (int8), D/8 (binary).

    Leaves out index overhead (ids, graph links, centroids): the storage of the codes only.

    Example:
        >>> [bytes_per_vector(384, p) for p in ("float32", "int8", "binary")]
        [1536.0, 384.0, 48.0]
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return float(np.ceil(dim / 8)) if precision == "binary" else dim * PRECISIONS[precision]


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """Per-dimension (min, max) of calibration embeddings (N, D): a (2, D) float32 array.

    The same ranges as ``sentence_transformers`` computes from ``calibration_embeddings``.
    Outliers stretch a range and waste levels; production systems may use percentiles.
    """
    c = finite_matrix(calibration, "calibration")
    return np.vstack([c.min(axis=0), c.max(axis=0)]).astype(np.float32)


def _check_ranges(ranges: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, steps) of the 256 buckets per dimension; steps of constant dims are 1."""
    r = np.asarray(ranges, dtype=np.float32)
    if r.shape != (2, dim) or (r[1] < r[0]).any():
        raise ValueError(
            f"ranges must be (2, D={dim}) rows (min, max) with min <= max; got {r.shape}"
        )
    steps = (r[1] - r[0]) / 255
    return r[0], np.where(steps == 0, 1, steps).astype(np.float32)


def quantize_int8(emb: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Scalar quantization: each dimension's range is cut into 256 buckets.

    Args:
        emb: (N, D) float embeddings.
        ranges: (2, D) per-dimension min and max, from :func:`int8_ranges`.

    Returns:
        (N, D) int8 codes, bucket index - 128; values outside the range are clipped.
        Identical to ``quantize_embeddings(emb, "int8", ranges=ranges)``.
    """
    e = finite_matrix(emb, "emb")
    starts, steps = _check_ranges(ranges, e.shape[1])
    buckets = np.clip(np.floor((e - starts) / steps), 0, 255)
    return (buckets - 128).astype(np.int8)


def dequantize_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """(N, D) int8 codes -> (N, D) float32 vectors at the lower edge of each bucket.

    Scoring a float query against these is *asymmetric* search, as faiss ``SQ8`` does;
    usearch instead multiplies int8 by int8 (faster, slightly less exact).
    """
    c = finite_matrix(codes, "codes", dtype=None)
    if c.dtype != np.int8:
        raise ValueError(f"codes must be int8 (from quantize_int8); got {c.dtype}")
    starts, steps = _check_ranges(ranges, c.shape[1])
    return ((c.astype(np.float32) + 128) * steps + starts).astype(np.float32)


def binarize(emb: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte: (N, D) float -> (N, ceil(D / 8)) uint8.

    Bit = 1 where the value is > 0. Identical to ``quantize_embeddings(emb, "ubinary")``
    and to the codes faiss ``IndexBinaryFlat`` stores.
    """
    return np.packbits(finite_matrix(emb, "emb") > 0, axis=1)


def unpack_signs(codes: np.ndarray, dim: int) -> np.ndarray:
    """(N, B) packed codes -> (N, D) float32 of +1 / -1 (the binary vector as a float)."""
    c = finite_matrix(codes, "codes", dtype=None)
    if c.dtype != np.uint8 or c.shape[1] != int(np.ceil(dim / 8)):
        raise ValueError(
            f"codes must be uint8 (N, ceil(D/8)={-(-dim // 8)}); got {c.dtype} {c.shape}"
        )
    return np.unpackbits(c, axis=1, count=dim).astype(np.float32) * 2 - 1


def hamming_topk(
    q_codes: np.ndarray, d_codes: np.ndarray, k: int, chunk_size: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Hamming top-k: XOR the codes and count the differing bits.

    Args:
        q_codes: (Q, B) uint8 query codes; d_codes: (N, B) uint8 corpus codes.
        k: hits per query, 1 <= k <= N.

    Returns:
        (Q, k) int distances (number of differing bits, smaller is closer) and (Q, k)
        int64 corpus indices, closest first, ties broken by lower index.
    Production equivalent: faiss ``IndexBinaryFlat`` (same results, SIMD popcount).
    """
    q, d = (
        finite_matrix(q_codes, "q_codes", dtype=None),
        finite_matrix(d_codes, "d_codes", dtype=None),
    )
    if q.dtype != np.uint8 or d.dtype != np.uint8 or q.shape[1] != d.shape[1]:
        raise ValueError(
            f"codes must be uint8 with equal widths; got {q.dtype} {q.shape}, {d.dtype} {d.shape}"
        )
    if not 1 <= k <= d.shape[0]:
        raise ValueError(f"k={k} must be between 1 and the corpus size N={d.shape[0]}")
    dist = np.empty((q.shape[0], d.shape[0]), dtype=np.int32)
    for start in range(0, d.shape[0], chunk_size):
        x = np.bitwise_xor(q[:, None, :], d[None, start : start + chunk_size, :])
        dist[:, start : start + chunk_size] = np.bitwise_count(x).sum(axis=2)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, idx, axis=1), idx


def rescore(
    queries: np.ndarray, candidates: np.ndarray, doc_vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate documents by the float query's dot product with ``doc_vectors``.

    Args:
        queries: (Q, D) float queries.
        candidates: (Q, C) corpus indices, e.g. the Hamming top-C, C >= k.
        doc_vectors: (N, D) vectors to score against: the unpacked +-1 codes (no extra
            memory: the HF/sentence-transformers recipe) or float32 rows read from disk.
        k: hits kept per query.

    Returns:
        (Q, k) scores and (Q, k) corpus indices, best first.
    """
    q, docs = finite_matrix(queries, "queries"), finite_matrix(doc_vectors, "doc_vectors")
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.shape[0] != q.shape[0] or not 1 <= k <= cand.shape[1]:
        raise ValueError(f"candidates must be (Q={q.shape[0]}, C>=k={k}); got {cand.shape}")
    if q.shape[1] != docs.shape[1]:
        raise ValueError(
            f"dimension mismatch: queries D={q.shape[1]}, doc_vectors D={docs.shape[1]}"
        )
    scores = np.einsum("qd,qcd->qc", q, docs[cand])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(cand, order, axis=1)


def binary_search_rescore(
    queries: np.ndarray, d_codes: np.ndarray, k: int, multiplier: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Hamming top-(multiplier * k) with binary queries, then rescoring with float queries.

    The rescoring vectors are the corpus codes themselves (unpacked to +-1), so the index
    never holds a float: 32x less memory than float32.
    Production equivalent: ``semantic_search_faiss(q, codes, corpus_precision="ubinary",
    rescore_multiplier=multiplier)``.

    Returns:
        (Q, k) float scores and (Q, k) corpus indices, best first.
    """
    q = finite_matrix(queries, "queries")
    if multiplier < 1:
        raise ValueError(f"multiplier must be >= 1, got {multiplier}")
    n = np.asarray(d_codes).shape[0]
    _, cand = hamming_topk(binarize(q), d_codes, min(k * multiplier, n))
    return rescore(q, cand, unpack_signs(d_codes, q.shape[1]), k)


def truncate(emb: np.ndarray, dims: int) -> np.ndarray:
    """Keep the first ``dims`` of D dimensions and re-normalise: (N, D) -> (N, dims).

    Matryoshka-trained models pack most information into the leading dimensions; for
    others the first dims are just an arbitrary subset.
    Production equivalent: ``SentenceTransformer(model_id, truncate_dim=dims)``.
    """
    e = finite_matrix(emb, "emb")
    if not 1 <= dims <= e.shape[1]:
        raise ValueError(f"dims={dims} must be between 1 and D={e.shape[1]}")
    t = e[:, :dims]
    norms = np.linalg.norm(t, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{int((norms == 0).sum())} row(s) are all zero in the first {dims} dims")
    return (t / norms).astype(np.float32)


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k (Q, >=k) index arrays.

    This is ANN recall (agreement with exact search), not retrieval recall (relevance).
    """
    a, e = np.asarray(approx), np.asarray(exact)
    if a.ndim != 2 or e.ndim != 2 or a.shape[0] != e.shape[0] or min(a.shape[1], e.shape[1]) < k:
        raise ValueError(f"approx {a.shape} and exact {e.shape} must be (Q, >= k={k}) index arrays")
    hits = [len(set(a[i, :k].tolist()) & set(e[i, :k].tolist())) for i in range(a.shape[0])]
    return float(np.mean(hits)) / k


def bandwidth_bound_qps(n: int, bytes_per_vec: float, bandwidth: float) -> float:
    """Upper bound on queries/s of a one-query-at-a-time exact scan: bandwidth / (N x bytes).

    Each query must read every stored vector once; batching queries shares that read
    and can beat this bound (then arithmetic, not memory, limits the speed).
    """
    if n < 1 or bytes_per_vec <= 0 or bandwidth <= 0:
        raise ValueError(
            f"need n >= 1, bytes_per_vec > 0, bandwidth > 0; got {n}, {bytes_per_vec}, {bandwidth}"
        )
    return bandwidth / (n * bytes_per_vec)


def interleaved_samples(
    workloads: Mapping[str, Callable[[], object]], repeats: int = 3
) -> dict[str, list[float]]:
    """Wall-clock seconds of every run of each workload, timed in turns: A, B, C, A, B, C, ...

    On a shared machine the background load drifts; timing the workloads in turns exposes
    each to the same load, so statistics of their samples compare fairly (the minimum for a
    bound, the median for a typical run). Compare ratios with wide margins, never absolute
    times. Returns: ``{name: [seconds of run 1, ..., run repeats]}``.

    Raises:
        ValueError: no workloads, or ``repeats < 1``.
    """
    if not workloads or repeats < 1:
        raise ValueError(f"need >= 1 workload and repeats >= 1; got {len(workloads)}, {repeats}")
    samples: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(repeats):
        for name, run in workloads.items():
            samples[name].append(elapsed(run))
    return samples


def interleaved_times(
    workloads: Mapping[str, Callable[[], object]], repeats: int = 3
) -> dict[str, float]:
    """Median seconds of each workload over :func:`interleaved_samples` (turns, same load).

    The median ignores one unlucky sample. Raises: as :func:`interleaved_samples`.
    """
    return {
        name: float(np.median(s)) for name, s in interleaved_samples(workloads, repeats).items()
    }
