"""Search: exact top-k, BM25 (bm25s), rank fusion and paraphrase mining.

Shapes: Q queries, N corpus documents, D embedding dimension, k hits per query.
A *run* is BEIR's result format: ``{query_id: {doc_id: score}}``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from embedlab.common import Run, finite_matrix


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Float32 (rows, D) tensor through :func:`embedlab.common.finite_matrix` (0 rows allowed:
    :func:`check_search_inputs` says which side is empty)."""
    return torch.from_numpy(finite_matrix(x, name, min_rows=0))


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
    corpus fits on a laptop. Each chunk's float32 scores pick candidates; these are
    rescored exactly (float64, rounded to float32) so that results are ordered by
    (-score, index) whatever ``chunk_size``: ties, such as duplicated documents, keep
    the lower index first.
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

    Example:
        >>> scores, idx = exact_topk([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.1], [1.0, 1.0]], k=2)
        >>> idx.tolist(), [round(s, 3) for s in scores[0].tolist()]
        ([[1, 2]], [0.995, 0.707])
    """
    q, c = _as_tensor(queries, "queries"), _as_tensor(corpus, "corpus")
    check_search_inputs(q, c, k)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if normalize:
        q, c = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(c, dim=1)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
    best_s = torch.zeros((q.shape[0], 0))
    for start in range(0, c.shape[0], chunk_size):
        candidates = _candidates(q @ c[start : start + chunk_size].T, k) + start
        best_s, best_i = _rescore_top(q, c, torch.cat([best_i, candidates], dim=1), k)
    return best_s, best_i


TIE_RTOL = 1e-5  # float32 GEMM rounding is far below this (about 1e-7 for unit vectors)


def _candidates(s: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of every score within a relative ``TIE_RTOL`` of each row's k-th best.

    A float32 matrix product rounds differently with the matrix shape, so the score of
    a document (and of its duplicates) changes in the last bit with ``chunk_size``; the
    margin keeps every document that could tie with the k-th one after exact rescoring.
    Returns (Q, m) indices, m >= min(k, C); rows may hold extra, harmless candidates.
    """
    kk = min(k, s.shape[1])
    top_s, top_i = s.topk(kk, dim=1)
    floor = top_s.min(dim=1, keepdim=True).values
    floor = floor - TIE_RTOL * s.abs().amax(dim=1, keepdim=True)
    m = int((s >= floor).sum(dim=1).max())
    return top_i if m <= kk else s.topk(m, dim=1).indices


def _rescore_top(
    q: torch.Tensor, c: torch.Tensor, idx: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescore (Q, m) candidate indices exactly and keep the k best by (-score, index).

    Scores are float64 dot products rounded to float32, so equal vectors get bit-equal
    scores whatever the chunking, and ties then keep the lower index.
    """
    block = max(1, (1 << 22) // max(1, idx.shape[1] * c.shape[1]))  # ~32 MB of float64
    exact = torch.cat(
        [
            (q[i : i + block, None, :].double() * c[idx[i : i + block]].double()).sum(-1)
            for i in range(0, q.shape[0], block)
        ]
    ).float()
    by_index = idx.argsort(dim=1)  # candidate indices are unique within a row
    exact, idx = exact.gather(1, by_index), idx.gather(1, by_index)
    order = torch.sort(exact, dim=1, descending=True, stable=True).indices[:, :k]
    return exact.gather(1, order), idx.gather(1, order)


def to_run(
    scores: torch.Tensor | np.ndarray,
    indices: torch.Tensor | np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
) -> Run:
    """Turn (Q, k) scores and corpus indices into a BEIR run ``{qid: {doc_id: score}}``.

    An index of -1 is faiss's "no hit here" padding (fewer than k found) and is dropped;
    any other index outside [0, N) is an error, never wrapped around to the last doc.

    Raises:
        ValueError: mismatched shapes, an index out of range, or duplicate query/doc ids.
    """
    scores, indices = np.asarray(scores), np.asarray(indices)
    if scores.shape != indices.shape or scores.ndim != 2 or scores.shape[0] != len(query_ids):
        raise ValueError(
            f"scores {scores.shape} and indices {indices.shape} must both be "
            f"(Q={len(query_ids)}, k)"
        )
    check_unique_ids(query_ids, "query ids")
    check_unique_ids(doc_ids, "doc ids")
    bad = (indices < -1) | (indices >= len(doc_ids))
    if bad.any():
        raise ValueError(
            f"index {int(indices[bad][0])} is outside the {len(doc_ids)} doc ids; expected "
            "0..N-1, or -1 for faiss's 'no hit'"
        )
    return {
        qid: {doc_ids[int(j)]: float(s) for s, j in zip(row_s, row_i, strict=True) if j != -1}
        for qid, row_s, row_i in zip(query_ids, scores, indices, strict=True)
    }


def check_unique_ids(ids: Sequence[str], what: str) -> None:
    """Raise ValueError when ``ids`` repeats an id (a run keyed by id would merge them)."""
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise ValueError(f"{what} must be unique; {dup!r} appears more than once")


def dense_search(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    k: int = 100,
) -> Run:
    """Exact cosine search returning a run; k is capped at the corpus size.

    Raises:
        ValueError: ids and rows disagree, or a query or doc id repeats (a run keyed by
            id would silently merge the two rows).

    Example:
        >>> docs = [[0.0, 1.0], [1.0, 0.1], [1.0, 1.0]]
        >>> run = dense_search([[1.0, 0.0]], docs, ["q1"], ["a", "b", "c"], k=2)
        >>> {d: round(s, 3) for d, s in run["q1"].items()}
        {'b': 0.995, 'c': 0.707}
    """
    if len(doc_ids) != len(doc_emb) or len(query_ids) != len(query_emb):
        raise ValueError(
            f"ids and embeddings disagree: {len(query_ids)} query ids vs {len(query_emb)} rows, "
            f"{len(doc_ids)} doc ids vs {len(doc_emb)} rows"
        )
    check_unique_ids(query_ids, "query ids")
    check_unique_ids(doc_ids, "doc ids")
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
        check_unique_ids(doc_ids, "doc ids")
        self.doc_ids = list(doc_ids)
        self.stem = stem
        tokens = _tokenize(texts, stem, ids=True)
        if not tokens.vocab:
            raise ValueError(
                f"BM25 found no indexable word in the {len(texts)} texts (all empty or only "
                "English stop words); expected at least one text with a content word"
            )
        self._index = bm25s.BM25(k1=k1, b=b)
        self._index.index(tokens, show_progress=False)

    def search(self, query_ids: Sequence[str], queries: Sequence[str], k: int = 100) -> Run:
        """Top-k documents per query as a run (documents with score 0 are dropped)."""
        if not 1 <= k <= len(self.doc_ids):
            raise ValueError(f"k={k} must be between 1 and the corpus size N={len(self.doc_ids)}")
        tokens = _tokenize(queries, self.stem, ids=True)
        idx, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        run = to_run(scores, idx, list(query_ids), self.doc_ids)
        return {q: {d: s for d, s in hits.items() if s > 0} for q, hits in run.items()}

    def analyze(self, text: str) -> list[str]:
        """The tokens this index uses for ``text``: see :func:`analyze`."""
        return analyze(text, self.stem)

    def nbytes(self) -> int:
        """Bytes of the index: bm25s's precomputed sparse score matrix (CSR data, indices,
        indptr); leaves out the vocabulary dict."""
        csr = self._index.scores
        return int(sum(csr[key].nbytes for key in ("data", "indices", "indptr")))


def analyze(text: str, stem: bool = True) -> list[str]:
    """BM25's tokens for ``text``: lowercased words of 2+ characters, English stop words
    dropped, Snowball-stemmed (``stem=True``), in order. What :class:`BM25` indexes and
    searches, so highlighting can mark exactly the words that matched.
    Production equivalent: ``bm25s.tokenize(..., return_ids=False)`` (used here).

    Example:
        >>> analyze("The coffee drinkers drink coffee")
        ['coffe', 'drinker', 'drink', 'coffe']
        >>> analyze("The coffee drinkers", stem=False)
        ['coffee', 'drinkers']
    """
    return [t for t in _tokenize([text], stem, ids=False)[0] if t]  # "" marks an empty text


def _tokenize(texts: Sequence[str], stem: bool, ids: bool):
    """``bm25s.tokenize`` with the one set of choices used everywhere: English stop words,
    Snowball stemming when ``stem``. ``ids=True``: bm25s's Tokenized; else token lists."""
    import bm25s

    stemmer = _stemmer() if stem else None
    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=stemmer, return_ids=ids, show_progress=False
    )


@functools.cache
def _stemmer():
    """English Snowball stemmer from PyStemmer, one per process (stemming is deterministic)."""
    import Stemmer

    return Stemmer.Stemmer("english")


def rrf(runs: Sequence[Run], k: int = 60, top: int | None = None) -> Run:
    """Reciprocal-rank fusion (Cormack et al. 2009): score(d) = sum_r 1 / (k + rank_r(d)).

    Uses ranks only, so runs on incomparable scales (BM25 vs cosine) fuse safely.
    Ranks start at 1; a document missing from a run contributes nothing there.

    Raises:
        ValueError: no runs, ``k <= 0``, ``top < 1`` or a NaN score (it cannot be ranked).
    """
    if not runs:
        raise ValueError("rrf needs at least one run")
    if k <= 0:
        raise ValueError(f"rrf constant k must be > 0, got {k}")
    if top is not None and top < 1:
        raise ValueError(f"rrf top={top} must be >= 1 (or None for every fused document)")
    fused: Run = {}
    for run in runs:
        for qid, hits in run.items():
            _check_finite_scores(qid, hits)
            ranked = sorted(hits.items(), key=lambda x: -x[1])
            acc = fused.setdefault(qid, {})
            for rank, (doc, _) in enumerate(ranked, start=1):
                acc[doc] = acc.get(doc, 0.0) + 1.0 / (k + rank)
    return {q: dict(sorted(h.items(), key=lambda x: -x[1])[:top]) for q, h in fused.items()}


def _check_finite_scores(qid: str, hits: dict[str, float]) -> None:
    """Raise ValueError for a NaN score: sorted() would rank it arbitrarily (often first)."""
    bad = [d for d, v in hits.items() if v != v]
    if bad:
        raise ValueError(
            f"run for query {qid!r} has NaN score(s), e.g. doc {bad[0]!r}; expected numbers"
        )


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
