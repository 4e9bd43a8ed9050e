"""Synthetic corpora fitted to real embeddings, and a read-bandwidth probe for scans.

Benchmarking an index at N = 10^6 needs 10^6 vectors, and encoding that many texts takes
days on a CPU. Copying real vectors with a little noise keeps their clusters but makes
every real vector a tight cloud of near-duplicates, which flatters IVF (its cells hold
clones) and penalises PQ (clones crowd the top-k with near-ties). Instead we fit a
distribution to the real vectors and *draw* distractors from it:

- :func:`fit_mixture`: a Gaussian mixture with a shared ("tied") covariance, fitted by
  k-means (the means and weights) and the pooled within-cluster covariance. Shapes: M real
  vectors, K components, D dimensions.
- :func:`sample_mixture`: (N, D) unit vectors drawn from it; none is a copy of a real one.

Production equivalent: ``sklearn.mixture.GaussianMixture(K, covariance_type="tied")``
(``fit`` then ``sample``): full EM instead of one hard-assignment step, and much slower in
384 dimensions on a 2-core CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from embedlab.common import best_time, finite_matrix


class Mixture(NamedTuple):
    """A tied-covariance Gaussian mixture: ``weights`` (K,), ``means`` (K, D) and the
    lower Cholesky factor ``chol`` (D, D) of the shared covariance."""

    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    """Float32 (M >= 2, D) array through :func:`embedlab.common.finite_matrix`."""
    return finite_matrix(x, name, min_rows=2)


def fit_mixture(real: np.ndarray, k: int, seed: int = 0, shrinkage: float = 1e-4) -> Mixture:
    """Fit a K-component tied-covariance Gaussian mixture to (M, D) real embeddings.

    k-means (faiss, 20 iterations, seeded) gives the means and weights; the covariance is
    that of the residuals (vector minus its centroid), pooled over components, plus
    ``shrinkage`` x I so its Cholesky factor exists when M is small next to D.

    Raises: ValueError when ``k`` is not in [1, M / 2] or the input is not a finite matrix.
    """
    import faiss

    x = _unit_rows(real, "real")
    m, d = x.shape
    if not 1 <= k <= m // 2:
        raise ValueError(f"k must be between 1 and M/2 = {m // 2} (two vectors per component)")
    km = faiss.Kmeans(d, k, niter=20, seed=seed, verbose=False)
    km.train(x)
    _, assign = km.index.search(x, 1)
    assign = assign.ravel()
    means = km.centroids.astype(np.float64)
    resid = x.astype(np.float64) - means[assign]
    cov = resid.T @ resid / max(m - k, 1) + shrinkage * np.eye(d)
    weights = np.bincount(assign, minlength=k) / m
    return Mixture(weights, means.astype(np.float32), np.linalg.cholesky(cov).astype(np.float32))


def sample_mixture(mix: Mixture, n: int, seed: int = 0, block: int = 100_000) -> np.ndarray:
    """Draw ``n`` vectors from ``mix`` and L2-normalise them: (n, D) float32.

    Generated in blocks of ``block`` rows to bound memory. Leaves out: any link to the
    texts (these vectors embed nothing), the real data's heavier-than-Gaussian tails.
    """
    if n < 1 or block < 1:
        raise ValueError(f"need n >= 1 and block >= 1, got n={n}, block={block}")
    rng = np.random.default_rng(seed)
    k, d = mix.means.shape
    comp = rng.choice(k, size=n, p=mix.weights / mix.weights.sum())
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, block):
        c = comp[start : start + block]
        z = rng.standard_normal((len(c), d), dtype=np.float32)
        x = mix.means[c] + z @ mix.chol.T
        out[start : start + len(c)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def read_bandwidth(x: np.ndarray, repeats: int = 5) -> float:
    """Bytes per second of a plain read of ``x``: best of ``repeats`` full scans.

    The scan is numpy's column sum of a row-major (N, D) array: every byte read once, in
    order, one vectorised add per element, nothing written but D floats. An exact
    one-query search reads the same bytes and does more work per byte, so
    ``read_bandwidth(C) / C.nbytes`` bounds its queries per second on the same array
    (cache-resident when C is small, main memory when large).
    Production equivalent: the STREAM / ``mbw`` benchmarks (a "sum" or "read" kernel).
    """
    a = np.ascontiguousarray(x)
    if a.size == 0 or repeats < 1:
        raise ValueError(f"need a non-empty array and repeats >= 1, got {a.shape}, {repeats}")
    return a.nbytes / best_time(lambda: a.sum(axis=0), repeats)
