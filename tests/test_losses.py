"""embedlab.losses.info_nce equals sentence-transformers' losses on the same embeddings."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import (
    MultipleNegativesRankingLoss,
    MultipleNegativesSymmetricRankingLoss,
)

from embedlab.losses import info_nce


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)


@pytest.mark.parametrize("tau", [0.02, 0.05, 1.0])
def test_symmetric_equals_mnsrl(pair, tau):
    x, y = pair
    ref = MultipleNegativesSymmetricRankingLoss(model=None, scale=1 / tau)
    expected = ref.compute_loss_from_embeddings([x, y], labels=None)
    assert torch.allclose(info_nce(x, y, tau, symmetric=True), expected, atol=1e-6)


@pytest.mark.parametrize("tau", [0.02, 0.05, 1.0])
def test_row_half_equals_mnrl(pair, tau):
    x, y = pair
    ref = MultipleNegativesRankingLoss(model=None, scale=1 / tau)
    expected = ref.compute_loss_from_embeddings([x, y], labels=None)
    assert torch.allclose(info_nce(x, y, tau, symmetric=False), expected, atol=1e-6)


def test_perfect_alignment_has_low_loss_and_shuffling_raises_it(pair):
    x, _ = pair
    aligned = info_nce(x, x, 0.05)
    shuffled = info_nce(x, x.roll(1, dims=0), 0.05)
    assert aligned < 0.01 < shuffled


def test_gradients_flow_to_both_sides(pair):
    x, y = (t.clone().requires_grad_() for t in pair)
    info_nce(x, y).backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


def test_mismatched_batch_sizes_are_rejected(pair):
    x, y = pair
    with pytest.raises(ValueError, match="same"):
        info_nce(x, y[:8])


@pytest.mark.parametrize("tau", [0.0, -0.1])
def test_non_positive_temperature_is_rejected(pair, tau):
    with pytest.raises(ValueError, match="temperature"):
        info_nce(*pair, temperature=tau)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        info_nce(torch.zeros(0, 4), torch.zeros(0, 4))


def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        info_nce(torch.zeros(4), torch.zeros(4))
