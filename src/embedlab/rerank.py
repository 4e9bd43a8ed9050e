"""Retrieve & re-rank: cross-encoder scoring of a first stage's top hits, and its costs.

Shapes: Q queries, n first-stage hits re-ranked per query, P = Q * n scored pairs.
A *run* is BEIR's result format ``{query_id: {doc_id: score}}`` (see :mod:`embedlab.search`).

The notebook ``03_bi_vs_cross_encoders`` uses these helpers; the cross-encoder it
re-ranks with comes from :func:`embedlab.models.load_reranker` (the published
``cross-encoder/ms-marco-MiniLM-L-6-v2`` online, a labelled stand-in offline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Run = dict[str, dict[str, float]]


def top_n_pairs(
    queries: Mapping[str, str], run: Run, docs: Mapping[str, str], top_n: int
) -> list[tuple[str, str]]:
    """The (query id, doc id) pairs a re-ranker scores: each query's top_n first-stage hits.

    Returns: P <= Q * top_n pairs, queries in run order, hits best first (ties: run order).
    Raises ValueError for top_n < 1, an empty run, or ids without text.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    if not run:
        raise ValueError("the run is empty: need at least one query with first-stage hits")
    missing_q = [q for q in run if q not in queries]
    if missing_q:
        raise ValueError(
            f"{len(missing_q)} run query id(s) have no query text, e.g. {missing_q[:3]}"
        )
    pairs = []
    for qid, hits in run.items():
        best = sorted(hits, key=lambda d: hits[d], reverse=True)[:top_n]
        pairs += [(qid, d) for d in best]
    missing_d = sorted({d for _, d in pairs if d not in docs})
    if missing_d:
        raise ValueError(f"{len(missing_d)} hit doc id(s) have no text, e.g. {missing_d[:3]}")
    return pairs


def rerank(
    cross_encoder,
    queries: Mapping[str, str],
    run: Run,
    docs: Mapping[str, str],
    top_n: int,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> Run:
    """Re-score each query's top_n first-stage hits with a cross-encoder.

    One joint forward pass per (query, doc) pair: P = Q * top_n passes in all, batched
    across queries. Hits below top_n are dropped, so nDCG@k of the result needs k <= top_n.
    Leaves out: score interpolation with the first stage, caching of pair scores.
    Production equivalent: ``CrossEncoder.rank(query, documents, top_k=...)`` per query,
    as in SBERT's "Retrieve & Re-Rank" example.

    Args:
        cross_encoder: a ``sentence_transformers.cross_encoder.CrossEncoder`` (anything
            with ``predict(list_of_pairs) -> (P,) scores``).
        queries: query id -> text; docs: doc id -> text.
        run: first-stage run ``{qid: {doc_id: score}}``.

    Returns: run ``{qid: {doc_id: cross-encoder score}}`` with <= top_n hits per query.
    """
    pairs = top_n_pairs(queries, run, docs, top_n)
    show = len(pairs) >= 256 if show_progress_bar is None else show_progress_bar
    texts = [(queries[q], docs[d]) for q, d in pairs]
    scores = np.asarray(
        cross_encoder.predict(texts, batch_size=batch_size, show_progress_bar=show),
        dtype=np.float64,
    ).reshape(-1)
    out: Run = {}
    for (qid, did), s in zip(pairs, scores, strict=True):
        out.setdefault(qid, {})[did] = float(s)
    return out


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Wall-clock seconds of the fastest of ``repeat`` calls of ``fn()``.

    The minimum is the least noisy estimate on a shared machine (other processes only
    ever add time). Leaves out warm-up: call ``fn`` once before if the first call is slow.
    Production equivalent: ``timeit.Timer(fn).repeat(repeat, number=1)`` then ``min``.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def loglog_slope(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of log(seconds) = slope * log(size) + log(c).

    A slope near 1 means the cost grows linearly with size, near 2 quadratically.
    Production equivalent: ``numpy.polyfit(np.log(x), np.log(y), 1)`` (what this calls).

    Returns: (slope, c), so seconds ~= c * size ** slope.
    """
    x, y = np.asarray(sizes, dtype=float), np.asarray(seconds, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"sizes {x.shape} and seconds {y.shape} must be 1-D of equal length")
    if len(x) < 2 or len(set(x.tolist())) < 2:
        raise ValueError("need at least two distinct sizes to fit a slope")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("sizes and seconds must all be > 0 to take logs")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(np.exp(intercept))


def _check_pair_dataset(train, columns: tuple[str, str, str]) -> None:
    missing = [c for c in columns if c not in train.column_names]
    if missing:
        raise ValueError(f"training data lacks column(s) {missing}; expected {list(columns)}")
    if len(train) == 0:
        raise ValueError("training data is empty: need at least one labelled pair")


def _training_args(cls, batch_size: int, lr: float, seed: int, out: str, **extra):
    return cls(
        output_dir=out,
        per_device_train_batch_size=batch_size,
        num_train_epochs=1,
        learning_rate=lr,
        warmup_steps=0.1,
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_strategy="no",
        use_cpu=not _cuda(),
        disable_tqdm=False,
        **extra,
    )


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def fit_cross_encoder(
    model,
    train,
    loss: str = "bce",
    batch_size: int = 16,
    lr: float = 5e-5,
    head_lr: float | None = None,
    seed: int = 0,
):
    """Fine-tune a CrossEncoder for one epoch on (sentence1, sentence2, label) rows, in place.

    loss "bce": binary cross-entropy on labels in [0, 1] (soft labels allowed: STS-B score / 5);
    "mse": squared error between the raw logit and the label (distillation from a teacher's
    scores). Leaves out evaluation during training and checkpointing.
    Production equivalent: what this calls, ``CrossEncoderTrainer`` with
    ``losses.BinaryCrossEntropyLoss`` / ``losses.MSELoss``.

    Returns: the same model, trained.
    """
    import tempfile

    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )

    _check_pair_dataset(train, ("sentence1", "sentence2", "label"))
    if loss not in {"bce", "mse"}:
        raise ValueError(f"loss={loss!r}; expected 'bce' or 'mse'")
    fn = losses.BinaryCrossEntropyLoss(model) if loss == "bce" else losses.MSELoss(model)
    with tempfile.TemporaryDirectory(prefix="embedlab-ce-") as out:
        extra = {"learning_rate_mapping": {r"classifier|pooler": head_lr}} if head_lr else {}
        args = _training_args(CrossEncoderTrainingArguments, batch_size, lr, seed, out, **extra)
        CrossEncoderTrainer(model=model, args=args, train_dataset=train, loss=fn).train()
    return model


def scifact_training_pairs(beir, first_stage: Run, negatives: int = 3, seed: int = 0):
    """Labelled (claim, abstract) pairs for a re-ranker: cited abstracts 1, hard negatives 0.

    Negatives are each claim's best-ranked first-stage hits that it does not cite (the
    "hard" ones a re-ranker must push down). Rows are shuffled with ``seed``.
    Leaves out: mining negatives from several retrievers, de-noising false negatives.
    Production equivalent: ``sentence_transformers.util.mine_hard_negatives``.

    Args:
        beir: a :class:`embedlab.data.Beir` split (queries, qrels, corpus).
        first_stage: run over ``beir``'s corpus, e.g. BM25 top 10 per claim.

    Returns: ``datasets.Dataset`` with columns sentence1 (claim), sentence2 (title + text),
    label (1.0 / 0.0).
    """
    import random

    from datasets import Dataset

    if negatives < 0:
        raise ValueError(f"negatives must be >= 0, got {negatives}")
    missing = [q for q in beir.qrels if q not in first_stage]
    if missing:
        raise ValueError(
            f"{len(missing)} judged claim(s) have no first-stage hits, e.g. {missing[:3]}"
        )
    text = dict(zip(beir.doc_ids, beir.doc_texts, strict=True))
    rows = []
    for qid, rels in beir.qrels.items():
        ranked = sorted(first_stage[qid], key=first_stage[qid].get, reverse=True)
        negs = [d for d in ranked if d not in rels][:negatives]
        rows += [(beir.queries[qid], text[d], 1.0) for d in rels]
        rows += [(beir.queries[qid], text[d], 0.0) for d in negs]
    random.Random(seed).shuffle(rows)
    columns = ("sentence1", "sentence2", "label")
    return Dataset.from_dict({c: [r[i] for r in rows] for i, c in enumerate(columns)})


STANDIN_MAX_LENGTH = (
    128  # tokens per (claim, abstract) pair: keeps training and re-ranking in budget
)


def standin_pairs_budget() -> int:
    """Training pairs for the stand-in: the 3,346 SciFact train pairs x the profile's scale."""
    from embedlab.config import profile

    return max(32, round(3346 * profile().train_steps_scale))


def train_standin_reranker(
    n_pairs: int | None = None, lr: float = 1e-4, head_lr: float | None = 1e-3, seed: int = 0
):
    """The offline stand-in re-ranker: a MiniLM-L6 cross-encoder trained here on SciFact train.

    Body: all-MiniLM-L6-v2 (a *bi-encoder* checkpoint, the only BERT-style model offline),
    fed "[CLS] claim [SEP] abstract [SEP]" (128 tokens), with a new linear head on [CLS].
    Data: each SciFact *train* claim's cited abstracts (label 1) + its 3 best BM25 hits over
    the full corpus that it does not cite (label 0); the first ``n_pairs`` after a seeded
    shuffle; one epoch of binary cross-entropy. No test claim is seen.
    It is NOT a pretrained re-ranker: ``cross-encoder/ms-marco-MiniLM-L-6-v2`` was trained on
    ~500k MS MARCO queries. Cached under ``home_dir()/models`` (written atomically).

    Returns: a ``CrossEncoder``.
    """
    import os
    import shutil
    import tempfile

    from sentence_transformers.cross_encoder import CrossEncoder

    from embedlab.config import home_dir
    from embedlab.data import load_scifact
    from embedlab.models import MINILM
    from embedlab.search import BM25

    n_pairs = standin_pairs_budget() if n_pairs is None else n_pairs
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    path = home_dir() / "models" / f"standin-reranker-v1-n{n_pairs}-lr{lr:g}-h{head_lr}-s{seed}"
    if (path / "config.json").exists():
        return CrossEncoder(str(path), device="cpu")
    train = load_scifact("train", corpus="full")
    bm25 = BM25(train.doc_ids, train.doc_texts)
    qids = list(train.qrels)
    first = bm25.search(qids, [train.queries[q] for q in qids], k=10)
    pairs = scifact_training_pairs(train, first, negatives=3, seed=seed)
    pairs = pairs.select(range(min(n_pairs, len(pairs))))
    model = CrossEncoder(MINILM, num_labels=1, max_length=STANDIN_MAX_LENGTH, device="cpu")
    fit_cross_encoder(model, pairs, lr=lr, head_lr=head_lr, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-standin-", dir=path.parent)
    model.save(tmp)
    try:
        os.replace(tmp, path)
    except OSError:  # another run saved it first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return model
