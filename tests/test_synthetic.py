"""Synthetic corpora fitted to real vectors, and the read-bandwidth probe."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.synthetic import Mixture, fit_mixture, read_bandwidth, sample_mixture


def clustered(seed: int = 0, per: int = 100, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated unit-vector clusters; returns (vectors (3*per, D), centres)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim, dtype=np.float32)[:3]
    x = np.repeat(centres, per, axis=0) + 0.1 * rng.standard_normal((3 * per, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), centres


def test_fit_mixture_recovers_clusters():
    x, centres = clustered()
    mix = fit_mixture(x, k=3)
    assert isinstance(mix, Mixture)
    assert mix.means.shape == (3, 16) and mix.chol.shape == (16, 16)
    assert np.isclose(mix.weights.sum(), 1.0) and np.allclose(mix.weights, 1 / 3, atol=0.05)
    # each true centre has a fitted mean pointing its way
    cos = (centres @ mix.means.T) / np.linalg.norm(mix.means, axis=1)
    assert (cos.max(axis=1) > 0.95).all()
    assert np.allclose(mix.chol, np.tril(mix.chol))


def test_sample_mixture_draws_new_unit_vectors_near_the_data():
    x, centres = clustered()
    mix = fit_mixture(x, k=3)
    s = sample_mixture(mix, 1000, seed=1, block=300)
    assert s.shape == (1000, 16) and s.dtype == np.float32
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(s, sample_mixture(mix, 1000, seed=1, block=300))  # seeded
    assert not np.array_equal(s, sample_mixture(mix, 1000, seed=2, block=300))
    # samples land in the clusters (close to one centre) but copy no real vector
    assert (s @ centres.T).max(axis=1).mean() > 0.9
    assert (s @ x.T).max() < 0.9999


def test_read_bandwidth_is_positive_and_finite():
    bw = read_bandwidth(np.ones((1000, 64), dtype=np.float32), repeats=2)
    assert np.isfinite(bw) and bw > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: fit_mixture(np.ones(10, dtype=np.float32), k=1),  # not (M, D)
        lambda: fit_mixture(clustered()[0], k=0),
        lambda: fit_mixture(clustered()[0], k=200),  # more than M / 2 components
        lambda: fit_mixture(np.full((10, 4), np.nan, dtype=np.float32), k=2),
        lambda: sample_mixture(fit_mixture(clustered()[0], k=3), 0),
        lambda: read_bandwidth(np.empty((0, 4), dtype=np.float32)),
        lambda: read_bandwidth(np.ones((4, 4), dtype=np.float32), repeats=0),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
