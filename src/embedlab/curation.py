"""Training-data curation the E5 way: weak pairs, injected noise, consistency filtering.

E5 (Wang et al. 2022) harvests ~1.3B weak (query, passage) pairs from semi-structured
sources (CCPairs), then keeps a pair only if a model ranks its passage in the top-k
(k = 2) for its query among a large pool of other passages (~270M pairs survive).
This module does the same at course scale:

- :func:`title_abstract_pairs`: (title -> abstract) pairs from a BEIR corpus, the
  S2ORC-style part of CCPairs, optionally excluding documents (e.g. test positives);
- :func:`inject_noise`: replace a known fraction of passages with other pairs' passages
  (random ones, or the nearest neighbour's: hard noise), so the noise is labelled and the
  filter can be scored;
- :func:`passage_ranks` / :func:`consistency_filter`: the filter itself;
  :func:`out_of_fold_ranks` scores each pair with a model that never trained on it;
- :func:`filter_report`: precision and recall of the filter against the known noise.

Shapes: N pairs, M extra pool passages, D embedding dimension.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import Dataset

from embedlab.common import finite_matrix


@dataclass(frozen=True)
class WeakPairs:
    """N weak (query, passage) pairs and where each side came from.

    ``query_ids[i]`` is the document whose title is ``queries[i]``; ``passage_ids[i]``
    the document whose abstract is ``passages[i]``. A pair is *noisy* when they differ.
    """

    queries: list[str]
    passages: list[str]
    query_ids: list[str]
    passage_ids: list[str] = field(repr=False)

    def __post_init__(self) -> None:
        n = len(self.queries)
        lengths = {len(self.passages), len(self.query_ids), len(self.passage_ids)}
        if lengths != {n}:
            raise ValueError(
                f"queries, passages, query_ids and passage_ids must have equal lengths; got "
                f"{n}, {len(self.passages)}, {len(self.query_ids)}, {len(self.passage_ids)}"
            )

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def noisy(self) -> np.ndarray:
        """(N,) bool: True where the passage does not come from the query's document."""
        return np.array([q != p for q, p in zip(self.query_ids, self.passage_ids, strict=True)])

    def select(self, mask: Sequence[bool] | np.ndarray) -> WeakPairs:
        """The pairs where ``mask`` (N,) is True, in order."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(self),):
            raise ValueError(f"mask must be a bool array of shape ({len(self)},); got {mask.shape}")
        idx = np.flatnonzero(mask)
        return WeakPairs(*([col[i] for i in idx] for col in self._columns()))

    def to_dataset(self) -> Dataset:
        """(anchor, positive) rows: the input MultipleNegativesRankingLoss expects."""
        return Dataset.from_dict({"anchor": self.queries, "positive": self.passages})

    def _columns(self) -> tuple[list[str], list[str], list[str], list[str]]:
        return self.queries, self.passages, self.query_ids, self.passage_ids


def title_abstract_pairs(
    corpus: Mapping[str, Mapping[str, str]],
    doc_ids: Sequence[str] | None = None,
    exclude: Collection[str] = (),
) -> WeakPairs:
    """One (title -> abstract) pair per document: the S2ORC-style pairs of CCPairs.

    Args:
        corpus: doc id -> {"title", "text"} (a :class:`embedlab.data.Beir` corpus).
        doc_ids: which documents to use, in this order (default: sorted corpus ids).
        exclude: doc ids to leave out, e.g. every test query's relevant abstract, so a
            model trained on the pairs never sees an evaluation positive.
    Returns: WeakPairs with no noise; documents with an empty title or abstract are
    skipped. Leaves out E5's other sources and its heuristic pre-filters (length, score).
    Production equivalent: ``sentence-transformers/s2orc`` (config ``title-abstract-pair``).
    """
    ids = sorted(corpus) if doc_ids is None else list(doc_ids)
    unknown = [d for d in ids if d not in corpus]
    if unknown:
        raise ValueError(f"{len(unknown)} doc id(s) are not in the corpus, e.g. {unknown[:3]}")
    skip = set(exclude)
    keep = [d for d in ids if d not in skip and corpus[d]["title"].strip()]
    keep = [d for d in keep if corpus[d]["text"].strip()]
    if not keep:
        raise ValueError("no document left with a title and an abstract after `exclude`")
    titles = [corpus[d]["title"].strip() for d in keep]
    abstracts = [corpus[d]["text"].strip() for d in keep]
    return WeakPairs(titles, abstracts, list(keep), list(keep))


def nearest_other(emb: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N,) index of each row's most similar *other* row (dot product; cosine if normalised).

    Args: emb (N, D), N >= 2. Used to make hard noise: a pair gets the passage that is
    closest to its own, the kind of mistake a model cannot spot from topic alone.
    Production equivalent: ``faiss.IndexFlatIP.search(emb, 2)``, second column.
    """
    e = _as_matrix(emb, "emb")
    if e.shape[0] < 2:
        raise ValueError(f"need at least 2 rows to find a neighbour, got {e.shape[0]}")
    s = e @ e.T  # (N, N)
    s.fill_diagonal_(float("-inf"))
    return s.argmax(dim=1).numpy().astype(np.int64)


def inject_noise(
    pairs: WeakPairs,
    fraction: float,
    seed: int = 0,
    nearest: np.ndarray | Sequence[int] | None = None,
    hard_share: float = 0.0,
) -> WeakPairs:
    """Give a seeded ``fraction`` of the pairs a wrong passage.

    ``round(fraction * N)`` pairs are chosen. A ``hard_share`` of them get the passage of
    their nearest neighbour (``nearest[i]``, from :func:`nearest_other`): an on-topic but
    wrong abstract, hard to spot. The rest get another chosen pair's passage, rotated
    along one random cycle (a derangement): random, off-topic noise.
    Returns: new WeakPairs (the input is not modified); its ``noisy`` marks the noise.
    Leaves out partially relevant passages.
    Production equivalent: none; real noise is unlabelled, which is why E5 filters.
    """
    if not 0.0 <= fraction < 1.0 or not 0.0 <= hard_share <= 1.0:
        raise ValueError(
            f"need fraction in [0, 1) and hard_share in [0, 1]; got {fraction}, {hard_share}"
        )
    if pairs.noisy.any():
        raise ValueError("pairs already contain noise; inject noise into clean pairs only")
    if hard_share > 0 and (nearest is None or len(nearest) != len(pairs)):
        raise ValueError(f"hard noise needs nearest: (N,) neighbour indices for N={len(pairs)}")
    m = round(fraction * len(pairs))
    chosen = random.Random(seed).sample(range(len(pairs)), m)
    n_hard = round(hard_share * m)
    hard, rotate = chosen[:n_hard], chosen[n_hard:]
    if len(rotate) == 1:
        raise ValueError(
            f"fraction={fraction}, hard_share={hard_share} of {len(pairs)} pairs leaves 1 pair "
            "to rotate, which has no other passage to swap with: use 0 or >= 2"
        )
    passages, passage_ids = list(pairs.passages), list(pairs.passage_ids)
    for a, b in zip(rotate, rotate[1:] + rotate[:1], strict=True):
        passages[a], passage_ids[a] = pairs.passages[b], pairs.passage_ids[b]
    for a in hard:
        b = int(nearest[a])
        if pairs.passage_ids[b] == pairs.query_ids[a]:
            raise ValueError(f"nearest[{a}] = {b} points at pair {a}'s own document")
        passages[a], passage_ids[a] = pairs.passages[b], pairs.passage_ids[b]
    return WeakPairs(list(pairs.queries), passages, list(pairs.query_ids), passage_ids)


def _as_matrix(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Float32 (rows >= 1, D) tensor through :func:`embedlab.common.finite_matrix`."""
    return torch.from_numpy(finite_matrix(x, name))


def passage_ranks(
    query_emb: np.ndarray | torch.Tensor,
    passage_emb: np.ndarray | torch.Tensor,
    extra_pool: np.ndarray | torch.Tensor | None = None,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Rank of each pair's own passage for its query, among all candidate passages.

    Candidates are every pair's passage (N) plus ``extra_pool`` (M random passages,
    E5 used 1M). Scores are dot products (cosine for normalised embeddings).
    Args:
        query_emb: (N, D); passage_emb: (N, D), row i = passage of pair i;
        extra_pool: optional (M, D).
    Returns: (N,) int64, rank 0 = own passage scores highest; rank r = r candidates
    score strictly higher. Leaves out ties (count as not higher) and approximate search.
    Production equivalent: a faiss index over the pool, ``search(q, k)``, then
    checking whether the pair's passage id is among the k hits.
    """
    q, p = _as_matrix(query_emb, "query_emb"), _as_matrix(passage_emb, "passage_emb")
    if q.shape != p.shape:
        raise ValueError(f"query_emb {tuple(q.shape)} and passage_emb {tuple(p.shape)} differ")
    cands = p
    if extra_pool is not None:
        extra = _as_matrix(extra_pool, "extra_pool")
        if extra.shape[1] != q.shape[1]:
            raise ValueError(f"extra_pool has D={extra.shape[1]}, queries have D={q.shape[1]}")
        cands = torch.cat([p, extra])  # (N + M, D)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    ranks = []
    for start in range(0, q.shape[0], chunk_size):
        s = q[start : start + chunk_size] @ cands.T  # (chunk, N + M)
        rows = torch.arange(s.shape[0])
        own = s[rows, rows + start].unsqueeze(1)  # same matmul: exact comparison
        ranks.append((s > own).sum(dim=1))
    return torch.cat(ranks).numpy().astype(np.int64)


def out_of_fold_ranks(
    pairs: WeakPairs, fit: Callable[[WeakPairs], object], n_folds: int = 2, seed: int = 0
) -> np.ndarray:
    """:func:`passage_ranks` of every pair, each judged by a model that never trained on it.

    A model trained on all the noisy pairs can memorise the wrong ones and then rank their
    passages first (the in-sample filter fails); splitting the pairs into ``n_folds`` seeded
    folds and letting the model trained on the other folds rank each fold avoids it
    (out-of-fold scoring, as in confident learning).

    Args:
        pairs: N (query, passage) pairs.
        fit: trains a fresh model on the pairs it is given and returns it (anything with
            sentence-transformers' ``encode``).
    Returns: (N,) int64 ranks; the pool is all N passages, as in :func:`passage_ranks`.
    """
    if n_folds < 2 or n_folds > len(pairs):
        raise ValueError(f"n_folds must be in [2, {len(pairs)}], got {n_folds}")
    fold = np.random.default_rng(seed).permutation(len(pairs)) % n_folds  # (N,) balanced
    ranks = np.zeros(len(pairs), dtype=np.int64)
    enc = dict(normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    for f in range(n_folds):
        model = fit(pairs.select(fold != f))
        q, p = model.encode(pairs.queries, **enc), model.encode(pairs.passages, **enc)
        ranks[fold == f] = passage_ranks(q, p)[fold == f]
    return ranks


def consistency_filter(ranks: np.ndarray | Sequence[int], k: int = 2) -> np.ndarray:
    """E5's consistency filter: keep a pair when its passage ranks in the top ``k``.

    Args: ranks (N,) from :func:`passage_ranks` (0 = best); k >= 1 (E5: k = 2).
    Returns: (N,) bool keep mask.
    """
    r = np.asarray(ranks)
    if r.ndim != 1 or r.size == 0 or not np.issubdtype(r.dtype, np.integer) or (r < 0).any():
        raise ValueError("ranks must be a non-empty 1-D array of non-negative integers")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return r < k


def filter_report(keep: np.ndarray | Sequence[bool], noisy: np.ndarray | Sequence[bool]) -> dict:
    """How well a filter removed known noise (the filter as a noise detector).

    Args: keep (N,) bool, the filter's decision; noisy (N,) bool, the truth.
    Returns: dict with
        ``precision``: of the removed pairs, the fraction that were noisy;
        ``recall``: of the noisy pairs, the fraction removed;
        ``clean_kept``: of the clean pairs, the fraction kept (the price of filtering);
        ``noise_before`` / ``noise_after``: noise fraction of the input / of the kept set;
        ``kept``: number of pairs kept.
    An undefined ratio (nothing removed, no noise, nothing kept) is reported as NaN.
    Production equivalent: ``sklearn.metrics.precision_score(noisy, ~keep)`` and
    ``recall_score`` (which return 0 with a warning instead of NaN).
    """
    kp, ny = np.asarray(keep), np.asarray(noisy)
    if kp.dtype != bool or ny.dtype != bool or kp.shape != ny.shape or kp.ndim != 1:
        raise ValueError(
            f"keep and noisy must be 1-D bool arrays of equal shape; got "
            f"{kp.dtype}{kp.shape} and {ny.dtype}{ny.shape}"
        )
    if kp.size == 0:
        raise ValueError("keep and noisy are empty: nothing to report")
    removed = ~kp

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "precision": ratio(int((removed & ny).sum()), int(removed.sum())),
        "recall": ratio(int((removed & ny).sum()), int(ny.sum())),
        "clean_kept": ratio(int((kp & ~ny).sum()), int((~ny).sum())),
        "noise_before": float(ny.mean()),
        "noise_after": ratio(int((kp & ny).sum()), int(kp.sum())),
        "kept": int(kp.sum()),
    }
