"""An MTEB-style benchmark over the task families the course has data for.

Families (Muennighoff et al. 2023, MTEB) and how each is scored here, as MTEB does:

- STS (STS-B, SICK-R): Spearman x 100 of cos(e1, e2) against the gold scores.
- Retrieval (SciFact): nDCG@10 x 100 of cosine search over the corpus.
- Pair classification (SICK, SNLI; entailment vs contradiction, neutral dropped):
  average precision x 100 of the pair cosine as the score for "entailment".
- Classification (STS-B genre): logistic regression on frozen embeddings of
  sentence1, trained on the train split, accuracy x 100 on the test split.
- Clustering (STS-B genre): k-means with k = number of genres on the test
  sentences, V-measure x 100 against the genres (labels that exist, none invented).

An *encoder* is ``f(texts, role) -> (N, D) array`` with role ``"query"``,
``"passage"`` or ``"symmetric"``; :func:`as_encoder` adapts a SentenceTransformer
(through the embedding cache, with its ``query``/``passage`` prompts if it has them).
Production equivalent: the ``mteb`` library (``mteb.evaluate``), which runs the same
families on many more datasets with identical metrics.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedlab.common import Run
from embedlab.config import profile
from embedlab.evaluate import ndcg_at_10, pair_cosine, spearman

Encoder = Callable[[list[str], str], np.ndarray]
ROLES = ("query", "passage", "symmetric")


@dataclass(frozen=True)
class Task:
    """One benchmark task: its family and metric. Its size is a budget of the profile."""

    name: str
    family: str
    metric: str

    @property
    def rows(self) -> int | None:
        """Rows of the active profile's seeded sample (``Profile.benchmark_rows``); None: all."""
        return profile().benchmark_cap(self.name)

    fast_rows = rows  # the older name (notebook 09 prints it); None in the full profile


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("STS-B", "STS", "Spearman"),
        Task("SICK-R", "STS", "Spearman"),
        Task("SciFact", "Retrieval", "nDCG@10"),
        Task("SICK-pairs", "PairClassification", "AP"),
        Task("SNLI-pairs", "PairClassification", "AP"),
        Task("STS-B-genre", "Classification", "accuracy"),
        Task("STS-B-genre-clusters", "Clustering", "V-measure"),
    )
}


def check_tasks(tasks: Sequence[str]) -> list[Task]:
    """The Task objects for ``tasks``; ValueError naming unknown ones and the valid set."""
    if not tasks:
        raise ValueError(f"no tasks given; choose from {sorted(TASKS)}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    return [TASKS[t] for t in tasks]


def as_encoder(model) -> Encoder:
    """Wrap a SentenceTransformer (or pass through a callable) as ``f(texts, role)``.

    Models with ``query``/``passage`` prompts (E5) get them by role, and ``query`` on both
    sides for symmetric tasks, as the E5 model card advises. Create the wrapper after
    training: it hashes the weights once, for the cache key.
    """
    from embedlab.cache import encode

    if not hasattr(model, "encode"):
        if callable(model):
            return model
        raise ValueError(f"expected a SentenceTransformer or f(texts, role); got {type(model)}")
    from embedlab.cache import model_fingerprint

    prompts = getattr(model, "prompts", {}) or {}
    # hashed once: the weights cannot change while one benchmark runs
    fingerprint = model_fingerprint(model)

    def _encode(texts: list[str], role: str) -> np.ndarray:
        name = "query" if role == "symmetric" else role
        prompt_name = name if name in prompts else None
        return encode(model, texts, prompt_name=prompt_name, fingerprint=fingerprint)

    return _encode


def checked_encode(encoder: Encoder, texts: list[str], role: str, dim: int | None) -> np.ndarray:
    """Encode and check the result is (len(texts), D) with one D across the benchmark.

    Example:
        >>> def encoder(texts, role):  # a toy encoder: (N, 2) vectors [length, 1]
        ...     return [[len(t), 1.0] for t in texts]
        >>> checked_encode(encoder, ["a", "bcd"], "symmetric", dim=None)
        array([[1., 1.],
               [3., 1.]], dtype=float32)
        >>> checked_encode(encoder, ["a"], "symmetric", dim=3)
        Traceback (most recent call last):
        ...
        ValueError: encoder returned D=2 but earlier tasks had D=3
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r} must be one of {ROLES}")
    emb = np.asarray(encoder(list(texts), role), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"encoder returned shape {emb.shape} for {len(texts)} texts; need (N, D)")
    if dim is not None and emb.shape[1] != dim:
        raise ValueError(f"encoder returned D={emb.shape[1]} but earlier tasks had D={dim}")
    if not np.isfinite(emb).all():
        raise ValueError("encoder returned NaN or inf embeddings")
    return emb


def _sample(n: int, cap: int | None, seed: int = 0) -> list[int]:
    """Row indices: all of them, or a seeded sorted sample of ``cap`` (a profile's
    ``Task.rows``; None in the full profile)."""
    if cap is None or n <= cap:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), cap))


def score_sts(
    encoder: Encoder, s1: list[str], s2: list[str], gold: Sequence[float], dim: int | None = None
) -> float:
    """STS: Spearman x 100 of cos(e1_i, e2_i) vs gold."""
    e1 = checked_encode(encoder, s1, "symmetric", dim)
    e2 = checked_encode(encoder, s2, "symmetric", e1.shape[1])
    return 100 * spearman(pair_cosine(e1, e2), gold)


def retrieval_run(encoder: Encoder, beir, dim: int | None = None) -> Run:
    """Exact cosine search of every query over the corpus: a run ``{qid: {doc: score}}``."""
    from embedlab.search import dense_search

    if not beir.qrels:
        raise ValueError("retrieval task has empty qrels: nothing to score")
    q = checked_encode(encoder, [beir.queries[i] for i in beir.query_ids], "query", dim)
    d = checked_encode(encoder, list(beir.doc_texts), "passage", q.shape[1])
    return dense_search(q, d, beir.query_ids, beir.doc_ids, k=min(100, len(beir.doc_ids)))


def score_retrieval(encoder: Encoder, beir, dim: int | None = None) -> float:
    """Retrieval: nDCG@10 x 100 (queries with role "query", documents "passage")."""
    return ndcg_at_10(retrieval_run(encoder, beir, dim), beir.qrels)


def score_pairs(
    encoder: Encoder,
    s1: list[str],
    s2: list[str],
    is_positive: Sequence[bool],
    dim: int | None = None,
) -> float:
    """Pair classification: average precision x 100 of cosine for the positive class."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(is_positive, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("pair classification needs both positive and negative pairs")
    e1 = checked_encode(encoder, s1, "symmetric", dim)
    e2 = checked_encode(encoder, s2, "symmetric", e1.shape[1])
    return 100 * float(average_precision_score(y, pair_cosine(e1, e2)))


def score_classification(
    encoder: Encoder,
    train: tuple[list[str], list],
    test: tuple[list[str], list],
    dim: int | None = None,
    seed: int = 0,
) -> float:
    """Classification: logistic regression on frozen embeddings; test accuracy x 100."""
    from sklearn.linear_model import LogisticRegression

    x_train = checked_encode(encoder, train[0], "symmetric", dim)
    x_test = checked_encode(encoder, test[0], "symmetric", x_train.shape[1])
    clf = LogisticRegression(max_iter=1000, random_state=seed).fit(x_train, train[1])
    return 100 * float(clf.score(x_test, test[1]))


def score_clustering(
    encoder: Encoder, texts: list[str], labels: Sequence, dim: int | None = None, seed: int = 0
) -> float:
    """Clustering: k-means (k = number of labels) on embeddings; V-measure x 100."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    if k < 2:
        raise ValueError("clustering needs at least two distinct labels")
    x = checked_encode(encoder, texts, "symmetric", dim)
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return 100 * float(v_measure_score(labels, pred))


def _genre(g: str) -> str:
    """STS-B spells the forum genre 'main-forum' in train and 'main-forums' in test."""
    return "main-forum" if g == "main-forums" else g


def _nli_pairs(ds, a: str, b: str, cap: int | None) -> tuple[list[str], list[str], list[bool]]:
    """Entailment (0) vs contradiction (2) pairs; neutral dropped, seeded cap in fast."""
    rows = [i for i, lab in enumerate(ds["label"]) if lab in (0, 2)]
    keep = [rows[i] for i in _sample(len(rows), cap)]
    sub = ds.select(keep)
    return list(sub[a]), list(sub[b]), [lab == 0 for lab in sub["label"]]


def scifact_for_benchmark(n_queries: int | None, distractors_per_query: int = 1):
    """SciFact test as the benchmark uses it: the full set, or in the fast profile a seeded
    sample of ``n_queries`` claims with their relevant abstracts plus as many
    distractors (a small corpus: scores are inflated against the 5,183-doc figures)."""
    from dataclasses import replace

    from embedlab.data import load_scifact

    beir = load_scifact("test", corpus="auto")  # the profile's subset, or the full corpus
    keep = [beir.query_ids[i] for i in _sample(len(beir.query_ids), n_queries)]
    if len(keep) == len(beir.query_ids):
        return beir
    relevant = sorted({d for q in keep for d in beir.qrels[q]})
    others = [d for d in beir.doc_ids if d not in set(relevant)]
    docs = relevant + [others[i] for i in _sample(len(others), distractors_per_query * len(keep))]
    return replace(
        beir,
        corpus={d: beir.corpus[d] for d in docs},
        queries={q: beir.queries[q] for q in keep},
        qrels={q: beir.qrels[q] for q in keep},
        subset_note=f"benchmark sample: {len(keep)} claims, {len(docs)} abstracts (scores inflated)",
    )


def run_task(task: Task, encoder: Encoder, dim: int | None = None) -> float:
    """Load the task's data (the profile's size) and score ``encoder`` on it."""
    from embedlab import data

    if task.name in ("STS-B", "SICK-R"):
        ds = data.load_stsb("test") if task.name == "STS-B" else data.load_sickr()
        ds = ds.select(_sample(len(ds), task.rows))
        return score_sts(encoder, list(ds["sentence1"]), list(ds["sentence2"]), ds["score"], dim)
    if task.name == "SciFact":
        return score_retrieval(encoder, scifact_for_benchmark(task.rows), dim)
    if task.name == "SICK-pairs":
        return score_pairs(
            encoder,
            *_nli_pairs(data.load_sick("test"), "sentence1", "sentence2", task.rows),
            dim,
        )
    if task.name == "SNLI-pairs":
        return score_pairs(
            encoder,
            *_nli_pairs(data.load_snli("test"), "premise", "hypothesis", task.rows),
            dim,
        )
    train, test = data.load_stsb("train"), data.load_stsb("test")
    # the classification test set and the clustering set are the same seeded sample
    test = test.select(_sample(len(test), TASKS["STS-B-genre-clusters"].rows))
    if task.name == "STS-B-genre":
        tr = train.select(_sample(len(train), task.rows))
        return score_classification(
            encoder,
            (list(tr["sentence1"]), [_genre(g) for g in tr["genre"]]),
            (list(test["sentence1"]), [_genre(g) for g in test["genre"]]),
            dim,
        )
    return score_clustering(
        encoder, list(test["sentence1"]), [_genre(g) for g in test["genre"]], dim
    )


def benchmark(model, tasks: Sequence[str] | None = None) -> dict[str, float]:
    """Score one model on MTEB-style tasks; returns ``{task: score x 100}``.

    Args:
        model: a SentenceTransformer or an encoder ``f(texts, role) -> (N, D)``.
        tasks: names from :data:`TASKS` (default: all). The fast profile caps the large
            sets at seeded samples (``Profile.benchmark_rows``) and uses the SciFact subset.
    Raises:
        ValueError: unknown task, an encoder returning the wrong shape or dimension.
    """
    selected = check_tasks(list(tasks) if tasks is not None else list(TASKS))
    encoder = _same_dim(as_encoder(model))
    return {task.name: run_task(task, encoder) for task in selected}


def _same_dim(encoder: Encoder) -> Encoder:
    """Wrap ``encoder`` so every call must return the D of its first call."""
    seen: list[int] = []

    def wrapped(texts: list[str], role: str) -> np.ndarray:
        emb = checked_encode(encoder, texts, role, seen[0] if seen else None)
        seen.append(emb.shape[1])
        return emb

    return wrapped


def tfidf_encoder(fit_texts: Sequence[str]) -> Encoder:
    """TF-IDF (scikit-learn) as a dense encoder, fitted on ``fit_texts``: the lexical row."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not fit_texts:
        raise ValueError("tfidf_encoder needs texts to fit its vocabulary")
    vec = TfidfVectorizer(sublinear_tf=True).fit(list(fit_texts))
    return lambda texts, role: vec.transform(texts).toarray().astype(np.float32)


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Paired bootstrap of mean(a - b) over the same queries.

    Resamples queries with replacement, keeping each query's pair of scores together,
    so the interval reflects how much the gap depends on which queries were drawn.

    Args:
        a, b: per-query scores of two systems on the same Q queries (same order).
    Returns: (mean difference, lower, upper) of the ``level`` percentile interval.
    Production equivalent: ``scipy.stats.bootstrap((a - b,), np.mean)``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"need two non-empty 1-D score arrays of equal length, got {a.shape}, {b.shape}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    diff = a - b
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(diff.mean()), float(lo), float(hi)
