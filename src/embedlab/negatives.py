"""Helpers for contrastive training with in-batch negatives (notebook 06).

Shapes: M pairs in a batch, D embedding dimension, Q queries, N corpus documents.
The loss itself lives in :mod:`embedlab.losses` (``info_nce``); this module holds what
goes around it: building (anchor, positive) pairs, the closed-form gradient of the
cross-entropy, in-batch duplicates (false negatives), a quiet training wrapper around
``SentenceTransformerTrainer`` (:func:`embedlab.train.fit`), a peak-memory probe and a retrieval score.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.data import Beir, subset_doc_ids
from embedlab.evaluate import ndcg_at_10_per_query
from embedlab.search import dense_search


def pairs_from_beir(beir: Beir):
    """One (anchor, positive) row per judged (query, relevant doc) pair.

    Rows follow ``beir.query_ids`` then the doc ids of each query's qrels, sorted; a
    query with several relevant docs yields several rows with the same anchor (these
    become false negatives if they land in one batch). Graded relevance is ignored.

    Returns: ``datasets.Dataset`` with columns ``anchor`` (query text) and ``positive``
    (``title + " " + text``). Production equivalent: the ``sentence-transformers/*``
    pair datasets on the Hub, which ship in this two-column layout.
    """
    from datasets import Dataset

    if not beir.qrels:
        raise ValueError(f"{beir.name}/{beir.split} has no qrels: nothing to pair")
    texts = dict(zip(beir.doc_ids, beir.doc_texts, strict=True))
    rows = [(beir.queries[q], texts[d]) for q in beir.query_ids for d in sorted(beir.qrels[q])]
    return Dataset.from_dict({"anchor": [a for a, _ in rows], "positive": [p for _, p in rows]})


def ce_logit_grad(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Closed-form gradient of ``F.cross_entropy(logits, labels)`` (mean) w.r.t. the logits.

    d loss / d logits = (softmax(logits) - onehot(labels)) / M: the positive's logit is
    pushed up by (1 - p_pos) / M, every other logit is pushed down by p_j / M, so the
    negatives the model currently confuses most get the largest share of the gradient.

    Args:
        logits: (M, C) scores; for InfoNCE C = M and the positives sit on the diagonal.
        labels: (M,) int64 index of the positive column in each row.
    Returns: (M, C) gradient. Production: autograd does this inside ``loss.backward()``.
    """
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"logits must be (M, C) and labels (M,); got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}); got {labels.tolist()}")
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return (logits.softmax(dim=1) - onehot) / logits.shape[0]


def false_negative_mask(anchors: Sequence[str], positives: Sequence[str]) -> torch.Tensor:
    """Where an in-batch "negative" is really a positive: same anchor or same positive text.

    Entry (i, j), j != i, is True when ``anchors[j] == anchors[i]`` (the same query paired
    with another relevant doc) or ``positives[j] == positives[i]`` (the same doc twice).
    InfoNCE's labels = arange(M) still call column j a negative for row i. Texts are
    compared exactly; near-duplicates are left out.

    Returns: (M, M) bool. Production: ``BatchSamplers.NO_DUPLICATES`` keeps such rows
    out of one batch; MNRL's ``hardness_mode`` and GISTEmbed's guide model mask them.
    """
    if len(anchors) != len(positives) or not anchors:
        raise ValueError(
            f"need M >= 1 anchors and M positives; got {len(anchors)} and {len(positives)}"
        )
    a = np.asarray(anchors, dtype=object)
    p = np.asarray(positives, dtype=object)
    same = (a[:, None] == a[None, :]) | (p[:, None] == p[None, :])
    np.fill_diagonal(same, False)
    return torch.from_numpy(same.astype(bool))


def duplicate_collisions(batches: Iterable[Sequence[int]], texts: Sequence[str]) -> int:
    """Number of texts that repeat an earlier text of the same batch, summed over batches.

    A batch of 4 rows whose ``texts`` are (a, b, a, a) counts 2. Each such repeat is a
    false negative for InfoNCE. ``batches`` holds row indices, as yielded by a torch
    ``BatchSampler`` (e.g. sentence-transformers' ``DefaultBatchSampler`` or
    ``NoDuplicatesBatchSampler``).
    """
    total = 0
    for batch in batches:
        idx = list(batch)
        if any(not 0 <= i < len(texts) for i in idx):
            raise ValueError(f"batch {idx[:8]}... has indices outside [0, {len(texts)})")
        total += len(idx) - len({texts[i] for i in idx})
    return total


def train_contrastive(
    model,
    dataset,
    loss,
    batch_size: int,
    epochs: float = 1.0,
    lr: float = 5e-2,
    seed: int = 0,
    no_duplicates: bool = True,
) -> float:
    """Train ``model`` in place with ``loss`` on ``dataset``; returns the wall time in s.

    Quiet and deterministic: fixed seed and data order, no logging, no checkpoints,
    ``report_to="none"``, output to a temporary folder; AdamW with a 10% linear warm-up
    then linear decay (the trainer's default); last incomplete batch dropped (every step sees M rows).

    Args:
        model: a ``SentenceTransformer``; ``dataset``: columns (anchor, positive[, negative]).
        loss: a sentence-transformers loss built on ``model`` (e.g. MNRL with scale 1/tau).
        batch_size: M, rows per step (>= 2, <= len(dataset)).
        no_duplicates: use ``BatchSamplers.NO_DUPLICATES`` (no text twice in a batch).
    Production equivalent: the same trainer with your own logging, evaluation and saving.
    """
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from embedlab.train import fit

    if not 2 <= batch_size <= len(dataset):
        raise ValueError(f"batch_size must be in [2, {len(dataset)}] (rows); got {batch_size}")
    if not (epochs > 0 and lr > 0):
        raise ValueError(f"epochs and lr must be > 0; got {epochs} and {lr}")
    sampler = BatchSamplers.NO_DUPLICATES if no_duplicates else BatchSamplers.BATCH_SAMPLER
    # every step sees M rows: an incomplete last batch would change InfoNCE's task
    return fit(model, dataset, loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
               dataloader_drop_last=True, dataloader_pin_memory=False,
               batch_sampler=sampler).seconds  # fmt: skip


def ndcg_per_query(model, beir: Beir, batch_size: int = 256) -> np.ndarray:
    """(Q,) nDCG@10 in [0, 1] of ``model`` on ``beir``, one per query in ``beir.query_ids``.

    Exact cosine search over the corpus, encoded afresh (no cache: meant for models that
    were just trained, e.g. static embeddings that encode thousands of texts per second).
    Per-query scores are what a paired bootstrap resamples (``evaluate.delta_mean``).
    Production equivalent: ``InformationRetrievalEvaluator`` in sentence-transformers.
    """
    if not beir.queries or not beir.corpus:
        raise ValueError(f"{beir.name}/{beir.split} needs queries and a corpus to search")
    enc = dict(normalize_embeddings=True, convert_to_numpy=True, batch_size=batch_size)
    q = model.encode([beir.queries[i] for i in beir.query_ids], **enc)  # (Q, D)
    d = model.encode(beir.doc_texts, **enc)  # (N, D)
    run = dense_search(q, d, beir.query_ids, beir.doc_ids, k=10)
    return ndcg_at_10_per_query(run, beir.qrels, beir.query_ids)


def ndcg_at_10(model, beir: Beir, batch_size: int = 256) -> float:
    """nDCG@10 x 100 of ``model`` on ``beir``: the mean of :func:`ndcg_per_query`."""
    return float(100 * ndcg_per_query(model, beir, batch_size).mean())


def holdout_queries(
    beir: Beir, n_heldout: int, n_distractors: int = 1000, seed: int = 0
) -> tuple[Beir, Beir]:
    """Split ``beir``'s queries into a training part and a held-out dev part.

    The dev part keeps ``n_heldout`` seeded queries, their qrels, and a corpus of their
    relevant docs plus ``n_distractors`` seeded others (:func:`embedlab.data.subset_doc_ids`),
    so hyper-parameters can be chosen without touching the test split.
    Returns: (train part, dev part); the train part keeps the full corpus of ``beir``.
    Production equivalent: ``datasets.Dataset.train_test_split`` on the query ids.
    """
    import random
    from dataclasses import replace

    ids = beir.query_ids
    if not 0 < n_heldout < len(ids):
        raise ValueError(f"n_heldout must be in [1, {len(ids) - 1}], got {n_heldout}")
    dev_ids = set(random.Random(seed).sample(ids, n_heldout))
    part = {True: {}, False: {}}
    for q in ids:
        part[q in dev_ids][q] = beir.qrels[q]
    docs = subset_doc_ids(beir.corpus, part[True], n_distractors, seed)
    train = replace(beir, split=f"{beir.split}-train", qrels=part[False],
                    queries={q: beir.queries[q] for q in part[False]})  # fmt: skip
    dev = replace(beir, split=f"{beir.split}-dev", qrels=part[True],
                  queries={q: beir.queries[q] for q in part[True]},
                  corpus={d: beir.corpus[d] for d in docs},
                  subset_note=f"{n_heldout} held-out {beir.split} queries, {len(docs):,} docs")  # fmt: skip
    return train, dev


_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_memory_supported() -> bool:
    """True on Linux, where the kernel can reset and report a process's peak RSS."""
    return _CLEAR_REFS.exists() and Path("/proc/self/status").exists()


def _status_mb(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def peak_rss_mb(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn()``; return its result and the peak resident memory it added, in MiB.

    Linux only. The kernel's high-water mark (VmHWM) is reset to the current RSS by
    writing 5 to ``/proc/self/clear_refs``; after ``fn`` the peak minus the starting RSS
    is what ``fn`` needed at its worst moment. glibc is told to hand every block of
    64 KiB or more straight back to the OS when freed (fixed ``M_MMAP_THRESHOLD``), so an
    earlier call's freed memory is not silently reused. Counts everything the process
    touches (tensors, tokenizer, Python objects), not only torch's allocations.
    CUDA equivalent: ``torch.cuda.reset_peak_memory_stats()`` + ``max_memory_allocated()``.

    Raises:
        ValueError: ``fn`` is not callable. OSError: not on Linux (see
        :func:`peak_memory_supported`).
    """
    if not callable(fn):
        raise ValueError(f"fn must be a callable taking no arguments; got {type(fn).__name__}")
    if not peak_memory_supported():
        raise OSError("peak_rss_mb needs Linux /proc/self/clear_refs")
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD = 64 KiB, and no dynamic raising
    libc.malloc_trim(0)
    _CLEAR_REFS.write_text("5")
    start = _status_mb("VmRSS")
    result = fn()
    return result, _status_mb("VmHWM") - start
