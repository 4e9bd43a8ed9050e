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
- speed: queries per second, the machine's copy bandwidth and the bandwidth bound of an
  exact scan (no production equivalent; benchmark suites such as ann-benchmarks do this).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from embedlab.common import best_time, elapsed, finite_matrix

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


def noisy_copies(base: np.ndarray, n: int, noise: float, seed: int = 0) -> np.ndarray:
    """``n`` synthetic vectors: random rows of ``base`` plus Gaussian noise, re-normalised.

    Args:
        base: (M, D) real, L2-normalised embeddings.
        n: rows to generate; noise: per-dimension standard deviation of the noise.
            A copy's cosine with its source is about 1 / sqrt(1 + D * noise**2).

    Returns:
        (n, D) float32 unit vectors. They keep the real data's cluster structure, but each
        real vector becomes a tight cloud of about n / M copies, which is easier for
        an index than n genuinely different texts. Generated in blocks to bound memory.
    """
    b = finite_matrix(base, "base")
    if n < 1 or noise < 0:
        raise ValueError(f"need n >= 1 and noise >= 0; got n={n}, noise={noise}")
    rng, out = np.random.default_rng(seed), np.empty((n, b.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = b[rng.integers(0, b.shape[0], min(100_000, n - start))]
        x = rows + noise * rng.standard_normal(rows.shape, dtype=np.float32)
        out[start : start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k (Q, >=k) index arrays.

    This is ANN recall (agreement with exact search), not retrieval recall (relevance).
    """
    a, e = np.asarray(approx), np.asarray(exact)
    if a.ndim != 2 or e.ndim != 2 or a.shape[0] != e.shape[0] or min(a.shape[1], e.shape[1]) < k:
        raise ValueError(f"approx {a.shape} and exact {e.shape} must be (Q, >= k={k}) index arrays")
    hits = [len(set(a[i, :k].tolist()) & set(e[i, :k].tolist())) for i in range(a.shape[0])]
    return float(np.mean(hits)) / k


def copy_bandwidth(n_bytes: int = 400_000_000, repeats: int = 3) -> float:
    """Memory bandwidth in bytes/s, STREAM "Copy" convention: best of ``repeats`` copies.

    A copy of an ``n_bytes`` array reads n_bytes and writes n_bytes; STREAM counts both,
    so this returns 2 * n_bytes / time. Use an array far larger than the CPU caches
    (hundreds of MB), or this measures cache speed. Leaves out: pinning threads, NUMA,
    non-temporal stores (the STREAM benchmark itself controls these).
    """
    if n_bytes < 1_000_000 or repeats < 1:
        raise ValueError(f"need n_bytes >= 1e6 and repeats >= 1; got {n_bytes}, {repeats}")
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_time(lambda: np.copyto(dst, src), repeats)


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


def measure_qps(
    search: Callable[[np.ndarray], object],
    queries: np.ndarray,
    batch_size: int | None = None,
    repeats: int = 3,
) -> float:
    """Queries per second of ``search(batch)`` over all (Q, D) queries: best of ``repeats``.

    ``batch_size=None`` sends all queries in one call (throughput); ``1`` sends them one
    by one (latency-bound, as an interactive service sees them). Best-of-n timing
    filters out noise from other processes; it is still wall-clock time on a shared CPU.
    """
    q = finite_matrix(queries, "queries")
    bs = q.shape[0] if batch_size is None else batch_size
    if bs < 1 or repeats < 1:
        raise ValueError(f"batch_size and repeats must be >= 1; got {batch_size}, {repeats}")

    def all_batches() -> None:
        for i in range(0, q.shape[0], bs):
            search(q[i : i + bs])

    return q.shape[0] / best_time(all_batches, repeats)


def interleaved_times(
    workloads: Mapping[str, Callable[[], object]], repeats: int = 3
) -> dict[str, float]:
    """Median wall-clock seconds of each workload, timed in turns: A, B, C, A, B, C, ...

    On a shared machine the background load drifts; timing the workloads in turns exposes
    each to the same load, so their *ratio* is fair, and the median ignores one unlucky
    sample. Compare ratios with wide margins, never absolute times.

    Raises:
        ValueError: no workloads, or ``repeats < 1``.
    """
    if not workloads or repeats < 1:
        raise ValueError(f"need >= 1 workload and repeats >= 1; got {len(workloads)}, {repeats}")
    samples: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(repeats):
        for name, run in workloads.items():
            samples[name].append(elapsed(run))
    return {name: float(np.median(s)) for name, s in samples.items()}
