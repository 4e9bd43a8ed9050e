"""Contrastive losses written out, for teaching; tested against sentence-transformers.

Shapes: M pairs in a batch, D embedding dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pair_batch(x: torch.Tensor, y: torch.Tensor, temperature: float) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y must be (M, D); got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError("empty batch: need at least one (x, y) pair")
    if x.shape != y.shape:
        raise ValueError(
            f"x {tuple(x.shape)} and y {tuple(y.shape)} must have the same (M, D): "
            "row i of x is paired with row i of y"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def info_nce(
    x: torch.Tensor,
    y: torch.Tensor,
    temperature: float = 0.05,
    symmetric: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """InfoNCE with in-batch negatives (cpt, Neelakantan et al. 2022; CLIP; SimCLR).

    logits = (X Y^T) / tau is an (M, M) matrix whose diagonal holds the positives;
    labels = arange(M). The row loss CE(logits, labels) asks each x_i to pick y_i among
    all y in the batch; the column loss CE(logits^T, labels) asks each y_i to pick x_i.
    They differ because (x_i, y_j) is not (x_j, y_i).

    Args:
        x, y: (M, D) embeddings; row i of x and row i of y are a positive pair.
        temperature: tau > 0; sentence-transformers' ``scale`` is 1 / tau.
        symmetric: average the row and column losses (True) or use rows only.
        normalize: L2-normalise first, so X Y^T holds cosines.

    Returns: scalar loss.
    Production equivalents: ``MultipleNegativesSymmetricRankingLoss`` (symmetric) and
    ``MultipleNegativesRankingLoss`` (rows only) in sentence-transformers, which also take
    extra hard-negative columns; ``CachedMultipleNegativesRankingLoss`` for large M.
    """
    _check_pair_batch(x, y, temperature)
    if normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits = x @ y.T / temperature  # (M, M)
    labels = torch.arange(x.shape[0], device=x.device)
    rows = F.cross_entropy(logits, labels)
    if not symmetric:
        return rows
    return (rows + F.cross_entropy(logits.T, labels)) / 2
