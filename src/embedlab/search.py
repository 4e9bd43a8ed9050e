"""Search: exact top-k, BM25 (bm25s), faiss indexes and rank fusion.

Shapes: Q queries, N corpus documents, D embedding dimension, k hits per query.
A *run* is BEIR's result format: ``{query_id: {doc_id: score}}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Run = dict[str, dict[str, float]]


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Float32 2-D tensor, or a ValueError that says what was wrong."""
    t = torch.as_tensor(x, dtype=torch.float32)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, D); got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise ValueError(f"{name} has {bad} row(s) with NaN or inf; embeddings must be finite")
    return t


def check_search_inputs(queries: torch.Tensor, corpus: torch.Tensor, k: int) -> None:
    """Raise ValueError for an empty corpus, k out of range or mismatched dimensions."""
    if corpus.shape[0] == 0:
        raise ValueError("the corpus is empty: need at least one document embedding")
    if queries.shape[0] == 0:
        raise ValueError("no queries: need at least one query embedding")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"dimension mismatch: queries have D={queries.shape[1]}, corpus has D={corpus.shape[1]}"
        )
    if not 1 <= k <= corpus.shape[0]:
        raise ValueError(f"k={k} must be between 1 and the corpus size N={corpus.shape[0]}")


def exact_topk(
    queries: np.ndarray | torch.Tensor,
    corpus: np.ndarray | torch.Tensor,
    k: int,
    chunk_size: int = 50_000,
    normalize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k by cosine (or dot product), scanning the corpus in chunks.

    Chunking bounds memory at Q x chunk_size scores instead of Q x N, so a 10^6-doc
    corpus fits on a laptop. Ties keep the lower index first.
    Production equivalent: ``sentence_transformers.util.semantic_search`` or a faiss
    ``IndexFlatIP``; neither is needed for the few thousand documents of this course.

    Args:
        queries: (Q, D) query embeddings.
        corpus: (N, D) document embeddings.
        k: hits per query, 1 <= k <= N.
        chunk_size: documents scored at once.
        normalize: L2-normalise both sides first (cosine); False = raw dot product.

    Returns:
        (Q, k) scores, s[i, j] = cos(q_i, d_idx[i, j]), and (Q, k) int64 indices into
        the corpus, best first.
    """
    q, c = _as_tensor(queries, "queries"), _as_tensor(corpus, "corpus")
    check_search_inputs(q, c, k)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if normalize:
        q, c = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(c, dim=1)
    best_s = torch.full((q.shape[0], 0), -torch.inf)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
    for start in range(0, c.shape[0], chunk_size):
        s = q @ c[start : start + chunk_size].T
        kk = min(k, s.shape[1])
        top_s, top_i = s.topk(kk, dim=1, sorted=True)
        merged_s = torch.cat([best_s, top_s], dim=1)
        merged_i = torch.cat([best_i, top_i + start], dim=1)
        # stable sort keeps earlier (lower-index) candidates first among equal scores
        order = torch.sort(merged_s, dim=1, descending=True, stable=True).indices[:, :k]
        best_s, best_i = merged_s.gather(1, order), merged_i.gather(1, order)
    return best_s, best_i


def to_run(
    scores: torch.Tensor | np.ndarray,
    indices: torch.Tensor | np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
) -> Run:
    """Turn (Q, k) scores and corpus indices into a BEIR run ``{qid: {doc_id: score}}``."""
    scores, indices = np.asarray(scores), np.asarray(indices)
    if scores.shape != indices.shape or scores.shape[0] != len(query_ids):
        raise ValueError(
            f"scores {scores.shape} and indices {indices.shape} must both be "
            f"(Q={len(query_ids)}, k)"
        )
    return {
        qid: {doc_ids[int(j)]: float(s) for s, j in zip(row_s, row_i, strict=True)}
        for qid, row_s, row_i in zip(query_ids, scores, indices, strict=True)
    }


def dense_search(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    k: int = 100,
) -> Run:
    """Exact cosine search returning a run; k is capped at the corpus size."""
    if len(doc_ids) != len(doc_emb) or len(query_ids) != len(query_emb):
        raise ValueError(
            f"ids and embeddings disagree: {len(query_ids)} query ids vs {len(query_emb)} rows, "
            f"{len(doc_ids)} doc ids vs {len(doc_emb)} rows"
        )
    scores, idx = exact_topk(query_emb, doc_emb, min(k, max(len(doc_ids), 1)))
    return to_run(scores, idx, query_ids, doc_ids)


class BM25:
    """Lexical BM25 over a corpus, through ``bm25s`` (sparse-matrix BM25, Lucene scoring).

    Tokenisation: lowercase, English stop words removed, optional Snowball stemming
    (``PyStemmer``); these choices, not the formula, explain most of the spread between
    published BM25 numbers.
    """

    def __init__(
        self,
        doc_ids: Sequence[str],
        texts: Sequence[str],
        k1: float = 1.2,
        b: float = 0.75,
        stem: bool = True,
    ) -> None:
        import bm25s

        if len(doc_ids) == 0:
            raise ValueError("the corpus is empty: BM25 needs at least one document")
        if len(doc_ids) != len(texts):
            raise ValueError(f"{len(doc_ids)} doc ids but {len(texts)} texts")
        self.doc_ids = list(doc_ids)
        self._stemmer = _stemmer() if stem else None
        tokens = bm25s.tokenize(
            list(texts), stopwords="en", stemmer=self._stemmer, show_progress=False
        )
        self._index = bm25s.BM25(k1=k1, b=b)
        self._index.index(tokens, show_progress=False)

    def search(self, query_ids: Sequence[str], queries: Sequence[str], k: int = 100) -> Run:
        """Top-k documents per query as a run (documents with score 0 are dropped)."""
        import bm25s

        if not 1 <= k <= len(self.doc_ids):
            raise ValueError(f"k={k} must be between 1 and the corpus size N={len(self.doc_ids)}")
        tokens = bm25s.tokenize(
            list(queries), stopwords="en", stemmer=self._stemmer, show_progress=False
        )
        idx, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        run = to_run(scores, idx, list(query_ids), self.doc_ids)
        return {q: {d: s for d, s in hits.items() if s > 0} for q, hits in run.items()}


def _stemmer():
    """English Snowball stemmer from PyStemmer."""
    import Stemmer

    return Stemmer.Stemmer("english")


def rrf(runs: Sequence[Run], k: int = 60, top: int | None = None) -> Run:
    """Reciprocal-rank fusion (Cormack et al. 2009): score(d) = sum_r 1 / (k + rank_r(d)).

    Uses ranks only, so runs on incomparable scales (BM25 vs cosine) fuse safely.
    Ranks start at 1; a document missing from a run contributes nothing there.
    """
    if not runs:
        raise ValueError("rrf needs at least one run")
    if k <= 0:
        raise ValueError(f"rrf constant k must be > 0, got {k}")
    fused: Run = {}
    for run in runs:
        for qid, hits in run.items():
            ranked = sorted(hits.items(), key=lambda x: -x[1])
            acc = fused.setdefault(qid, {})
            for rank, (doc, _) in enumerate(ranked, start=1):
                acc[doc] = acc.get(doc, 0.0) + 1.0 / (k + rank)
    return {q: dict(sorted(h.items(), key=lambda x: -x[1])[:top]) for q, h in fused.items()}


class FaissIndex:
    """A thin wrapper over ``faiss.index_factory`` for inner-product search.

    ``spec`` is a faiss factory string: ``"Flat"``, ``"IVF256,Flat"``, ``"HNSW32"``,
    ``"PQ48"``, ``"IVF256,PQ48"``. Vectors are L2-normalised so inner product = cosine.
    Parameters such as ``nprobe`` / ``efSearch`` are set with :meth:`set_param`.
    """

    def __init__(self, dim: int, spec: str = "Flat") -> None:
        import faiss

        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.spec = dim, spec
        self.index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)

    def _prep(self, x: np.ndarray, name: str) -> np.ndarray:
        t = _as_tensor(x, name)
        if t.shape[1] != self.dim:
            raise ValueError(f"{name} has D={t.shape[1]} but the index was built for D={self.dim}")
        return torch.nn.functional.normalize(t, dim=1).numpy()

    def add(self, vectors: np.ndarray) -> FaissIndex:
        """Train (if the index type needs it) and add (N, D) vectors."""
        v = self._prep(vectors, "vectors")
        if not self.index.is_trained:
            self.index.train(v)
        self.index.add(v)
        return self

    def set_param(self, name: str, value: int) -> None:
        """Set a search-time parameter, e.g. ``nprobe`` (IVF) or ``efSearch`` (HNSW)."""
        import faiss

        faiss.ParameterSpace().set_index_parameter(self.index, name, value)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns: (Q, k) scores and (Q, k) indices, best first (-1 where fewer found)."""
        if self.index.ntotal == 0:
            raise ValueError("the index is empty: call add() first")
        if not 1 <= k <= self.index.ntotal:
            raise ValueError(f"k={k} must be between 1 and the index size {self.index.ntotal}")
        return self.index.search(self._prep(queries, "queries"), k)


def mine_pairs(
    embeddings: np.ndarray | torch.Tensor, top_k: int = 10, chunk_size: int = 5_000
) -> list[tuple[float, int, int]]:
    """Paraphrase mining: the most similar pairs of a set of texts, by exact all-pairs search.

    Every row is searched against the whole set in chunks of ``chunk_size`` rows (memory
    chunk_size x N, not N x N); each row keeps its ``top_k`` nearest *other* rows, and
    the pairs are deduplicated as (i, j) with i < j. Exhaustive within each row's top_k:
    a pair that is in neither row's top_k is left out (as in sentence-transformers).
    Production equivalent: ``sentence_transformers.util.paraphrase_mining_embeddings``.

    Args:
        embeddings: (N, D) embeddings, N >= 2.
        top_k: neighbours kept per row, 1 <= top_k <= N - 1.

    Returns:
        ``[(cosine, i, j), ...]`` sorted by descending cosine (ties: i, then j).
    """
    e = _as_tensor(embeddings, "embeddings")
    n = e.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 embeddings to mine pairs, got {n}")
    if not 1 <= top_k <= n - 1:
        raise ValueError(f"top_k={top_k} must be between 1 and N-1={n - 1}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, n, chunk_size):
        scores, idx = exact_topk(e[start : start + chunk_size], e, top_k + 1)
        for row, (s_row, i_row) in enumerate(zip(scores.tolist(), idx.tolist(), strict=True)):
            i = start + row
            others = [(j, s) for j, s in zip(i_row, s_row, strict=True) if j != i][:top_k]
            for j, s in others:
                pairs.setdefault((min(i, j), max(i, j)), s)
    return sorted(((s, i, j) for (i, j), s in pairs.items()), key=lambda x: (-x[0], x[1], x[2]))


def hits_to_tensors(hits: Sequence[Sequence[dict]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``sentence_transformers.util.semantic_search`` output as (Q, k) scores and indices.

    Args:
        hits: one list per query of ``{"corpus_id": int, "score": float}``, best first,
            every list of the same length k.

    Returns:
        (Q, k) float32 scores and (Q, k) int64 corpus indices, the shapes of :func:`exact_topk`.
    """
    if not hits or any(len(row) != len(hits[0]) for row in hits) or not hits[0]:
        raise ValueError("hits must be a non-empty list of equally long, non-empty hit lists")
    try:
        scores = torch.tensor([[h["score"] for h in row] for row in hits], dtype=torch.float32)
        idx = torch.tensor([[h["corpus_id"] for h in row] for row in hits], dtype=torch.long)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"every hit must be a dict with 'corpus_id' and 'score' ({exc})") from None
    return scores, idx


def same_topk(
    a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor], atol: float = 1e-5
) -> bool:
    """True when two top-k results agree: the same scores, and the same ids up to ties.

    ``a`` and ``b`` are ``(scores, indices)`` pairs of shape (Q, k), best first. Scores
    must match within ``atol``. Ids must match position by position, except inside a
    run of scores tied within ``atol``, where only the set of ids must match; a tie run
    that reaches position k may continue beyond the cut, so its ids are not compared.
    """
    (sa, ia), (sb, ib) = (tuple(torch.as_tensor(x) for x in pair) for pair in (a, b))
    if not (sa.shape == ia.shape == sb.shape == ib.shape) or sa.ndim != 2:
        raise ValueError(
            f"need (scores, indices) pairs of one (Q, k) shape, got {tuple(sa.shape)}, "
            f"{tuple(ia.shape)}, {tuple(sb.shape)}, {tuple(ib.shape)}"
        )
    if not torch.allclose(sa.float(), sb.float(), atol=atol, rtol=0):
        return False
    for s_row, a_row, b_row in zip(sa.tolist(), ia.tolist(), ib.tolist(), strict=True):
        start, k = 0, len(s_row)
        while start < k:
            end = start + 1
            while end < k and abs(s_row[end] - s_row[end - 1]) <= atol:
                end += 1
            if end < k and set(a_row[start:end]) != set(b_row[start:end]):
                return False
            start = end
    return True
