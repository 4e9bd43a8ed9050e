"""The course's capstone: a small semantic search app over SciFact or a folder of notes.

Two layers, so the logic is testable without a browser:

- :class:`SearchEngine` (plain Python): a first stage (BM25, dense, or hybrid by
  reciprocal-rank fusion), an optional re-rank stage (any callable
  ``(query, [doc_text]) -> scores``), top-k hits with a highlighted snippet and, when the
  query is a judged claim, relevance marks; per-stage latency in milliseconds.
- :class:`SearchApp`: a thin ipywidgets view (query box, stage toggle, re-rank checkbox,
  k slider, results) that only reads its widgets and calls the engine.

Production equivalents: a search server (Elasticsearch/OpenSearch, Vespa, Qdrant) with a
hybrid query and a re-ranking step; here everything is in memory and exact.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedlab.common import Qrels, Run
from embedlab.search import BM25, analyze, check_unique_ids, dense_search, rrf

STAGES = ("bm25", "dense", "hybrid")
Reranker = Callable[[str, list[str]], Sequence[float]]
TEXT_SUFFIXES = (".txt", ".md")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    """One ranked document. ``relevant`` is None when the query has no judgments."""

    rank: int
    doc_id: str
    score: float
    title: str
    snippet: str  # HTML: escaped text with the query's terms in <mark>
    relevant: bool | None = None


@dataclass(frozen=True)
class SearchResult:
    """Hits (best first) and per-stage latency in milliseconds (``total`` included)."""

    query: str
    stage: str
    rerank: bool
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def doc_ids(self) -> list[str]:
        """Ranked document ids."""
        return [h.doc_id for h in self.hits]

    @property
    def judged(self) -> bool:
        """True when the query matched a judged query (relevance marks are meaningful)."""
        return any(h.relevant is not None for h in self.hits)


# ------------------------------------------------------------------ documents from files


def load_folder(path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """Read every ``.txt`` / ``.md`` file under ``path`` (recursively, sorted).

    Files that resolve outside ``path`` (a symlink to ``~/.ssh/notes.txt``) are skipped.

    Returns:
        doc ids (paths relative to ``path``), titles (first non-empty line, Markdown
        ``#`` stripped, else the file name) and texts (the whole file).
    Raises:
        ValueError: ``path`` is not a folder, or holds no non-empty .txt/.md file.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; expected a folder of .txt/.md files")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES and _inside(p, root)
    )
    ids, titles, texts = [], [], []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace").strip()
        if not text:
            continue
        first = next(line for line in text.splitlines() if line.strip())
        ids.append(f.relative_to(root).as_posix())
        titles.append(first.strip().lstrip("#").strip()[:120] or f.stem)
        texts.append(text)
    if not ids:
        raise ValueError(f"{root} holds no non-empty .txt or .md file; add some notes first")
    return ids, titles, texts


def _inside(path: Path, root: Path) -> bool:
    """True when ``path``, with every symlink resolved, lies under ``root``."""
    return path.resolve().is_relative_to(root.resolve())


# ------------------------------------------------------------------ snippets


Analyzer = Callable[[str], list[str]]


def query_stems(query: str, analyze: Analyzer = analyze) -> set[str]:
    """The query's BM25 tokens: stems of its content words (stop words, 1-letter words
    dropped), by ``analyze``, :func:`embedlab.search.analyze` unless the engine's index
    passes its own :meth:`BM25.analyze`."""
    return set(analyze(query))


def highlight(text: str, query: str, width: int = 280, analyze: Analyzer = analyze) -> str:
    """An HTML snippet of ``text`` around its first query term, terms in ``<mark>``.

    A word is marked when ``analyze`` gives it one of the query's tokens: by default
    BM25's analysis (:func:`embedlab.search.analyze`, Snowball stems, so ``vaccines``
    marks ``vaccine``; stop words never match); the engine passes its index's own. Text is HTML-escaped. ``width`` characters are
    kept, starting a little before the first match; ``…`` marks cuts.
    """
    if width < 20:
        raise ValueError(f"width={width} is too small; expected >= 20 characters")
    stems = query_stems(query, analyze)
    words = list(_WORD.finditer(text))
    tokens = {w: set(analyze(w)) for w in {m.group() for m in words}}  # each word once
    spans = [m.span() for m in words if tokens[m.group()] & stems]
    start = max(0, spans[0][0] - width // 4) if spans else 0
    end = min(len(text), start + width)
    out, pos = [], start
    for a, b in spans:
        if a < start or b > end:
            continue
        out += [html.escape(text[pos:a]), f"<mark>{html.escape(text[a:b])}</mark>"]
        pos = b
    out.append(html.escape(text[pos:end]))
    return ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(text) else "")


# ------------------------------------------------------------------ re-rankers


def bi_encoder_reranker(model, query_prompt: str = "", doc_prompt: str = "") -> Reranker:
    """A re-ranker that re-scores candidates by cosine under a *second* bi-encoder.

    This is not a cross-encoder: query and document are still encoded separately, so it
    cannot model their interaction; it is a cheap stand-in that adds a second opinion
    (e.g. E5 with its ``"query: "`` / ``"passage: "`` prompts) over the first stage.
    Candidates are encoded at query time (no cache), so its latency is honest.
    """

    def rerank(query: str, docs: list[str]) -> list[float]:
        d = model.encode([doc_prompt + x for x in docs], normalize_embeddings=True)
        q = model.encode([query_prompt + query], normalize_embeddings=True)
        return [float(s) for s in np.asarray(d) @ np.asarray(q)[0]]

    return rerank


def cross_encoder_reranker(model) -> Reranker:
    """Wrap a ``sentence_transformers.cross_encoder.CrossEncoder`` (one pass per pair)."""

    def rerank(query: str, docs: list[str]) -> list[float]:
        pairs = [(query, d) for d in docs]
        return [float(s) for s in model.predict(pairs, show_progress_bar=False)]

    return rerank


def _timed(fn: Callable, *args):
    """(fn(*args), elapsed milliseconds)."""
    start = time.perf_counter()
    out = fn(*args)
    return out, 1000 * (time.perf_counter() - start)


# ------------------------------------------------------------------ the engine


class SearchEngine:
    """Retrieve (BM25 | dense | hybrid) then optionally re-rank, over an in-memory corpus.

    Shapes: N documents, D embedding dimension. ``doc_emb`` (N, D) defaults to
    ``embedlab.cache.encode(encoder, texts)`` (cached on disk). Hybrid fuses the top
    ``fusion_depth`` of BM25 and of dense with RRF (k=60); re-ranking re-scores the
    first stage's top ``rerank_depth`` with ``reranker(query, [doc_text]) -> scores``.
    ``qrels`` + ``queries`` (BEIR shapes) turn on relevance marks for judged queries.
    Left out: incremental indexing, filters, approximate indexes (see notebook 04).
    """

    def __init__(
        self,
        doc_ids: Sequence[str],
        titles: Sequence[str],
        texts: Sequence[str],
        encoder,
        *,
        reranker: Reranker | None = None,
        doc_emb: np.ndarray | None = None,
        qrels: Qrels | None = None,
        queries: Mapping[str, str] | None = None,
        display_texts: Sequence[str] | None = None,
        rerank_depth: int = 20,
        fusion_depth: int = 100,
    ) -> None:
        from embedlab.cache import encode

        if not doc_ids or not (len(doc_ids) == len(titles) == len(texts)):
            raise ValueError(
                f"need a non-empty corpus with one title and text per id; got "
                f"{len(doc_ids)} ids, {len(titles)} titles, {len(texts)} texts"
            )
        if rerank_depth < 1 or fusion_depth < 1:
            raise ValueError(f"depths must be >= 1, got {rerank_depth=} {fusion_depth=}")
        check_unique_ids(doc_ids, "doc ids")
        self.doc_ids, self.titles, self.texts = list(doc_ids), list(titles), list(texts)
        self.display_texts = list(display_texts or texts)
        self.encoder, self.reranker = encoder, reranker
        self.doc_emb = np.asarray(encode(encoder, self.texts) if doc_emb is None else doc_emb)
        if self.doc_emb.shape[0] != len(self.doc_ids):
            raise ValueError(f"doc_emb has {self.doc_emb.shape[0]} rows for {len(doc_ids)} docs")
        self.bm25 = BM25(self.doc_ids, self.texts)
        self.qrels = {q: dict(d) for q, d in (qrels or {}).items()}
        self._qid_of = {text.strip(): qid for qid, text in (queries or {}).items()}
        self._pos = {d: i for i, d in enumerate(self.doc_ids)}
        self.rerank_depth, self.fusion_depth = rerank_depth, fusion_depth

    @classmethod
    def from_beir(cls, beir, encoder, **kwargs) -> SearchEngine:
        """An engine over a :class:`embedlab.data.Beir` corpus, with its qrels and queries."""
        ids = beir.doc_ids
        return cls(
            ids,
            [beir.corpus[d]["title"] for d in ids],
            beir.doc_texts,
            encoder,
            qrels=beir.qrels,
            queries=beir.queries,
            display_texts=[beir.corpus[d]["text"] for d in ids],
            **kwargs,
        )

    @classmethod
    def from_folder(cls, path: str | Path, encoder, **kwargs) -> SearchEngine:
        """An engine over the .txt/.md files of a folder (no judgments: no relevance marks)."""
        ids, titles, texts = load_folder(path)
        return cls(ids, titles, texts, encoder, **kwargs)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def _check(self, stage: str, rerank: bool, k: int) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        if rerank and self.reranker is None:
            raise ValueError("rerank=True but this engine has no reranker; pass reranker=...")
        if not 1 <= k <= len(self):
            raise ValueError(f"k={k} must be between 1 and the corpus size N={len(self)}")

    def _encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """(Q, D) unit vectors; batches go through the disk cache, a single query does not."""
        if len(queries) > 1:
            from embedlab.cache import encode

            return encode(self.encoder, list(queries))
        emb = self.encoder.encode(list(queries), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(emb, dtype=np.float32)

    def first_stage(
        self, qids: Sequence[str], queries: Sequence[str], stage: str, n: int
    ) -> tuple[Run, dict[str, float]]:
        """Top-n run for each query, and the milliseconds spent in each step."""
        n, t = min(n, len(self)), {}
        depth = max(n, min(self.fusion_depth, len(self))) if stage == "hybrid" else n
        runs = []
        if stage in ("bm25", "hybrid"):
            bm25_run, t["bm25"] = _timed(self.bm25.search, qids, queries, depth)
            runs.append(bm25_run)
        if stage in ("dense", "hybrid"):
            q_emb, t["encode query"] = _timed(self._encode_queries, queries)
            dense, t["dense scan"] = _timed(
                dense_search, q_emb, self.doc_emb, qids, self.doc_ids, depth
            )
            runs.append(dense)
        if stage == "hybrid":
            fused, t["rrf fusion"] = _timed(lambda: rrf(runs, k=60, top=n))
            return fused, t
        return runs[0], t

    def rerank_run(self, run: Run, queries: Mapping[str, str], depth: int) -> Run:
        """Re-score each query's top ``depth`` hits with the reranker; best first."""
        out: Run = {}
        for qid, hits in run.items():
            ids = sorted(hits, key=lambda d: -hits[d])[:depth]
            if not ids:  # e.g. BM25 found no query term anywhere
                out[qid] = {}
                continue
            scores = list(self.reranker(queries[qid], [self.texts[self._pos[d]] for d in ids]))
            if len(scores) != len(ids):
                raise ValueError(f"reranker returned {len(scores)} scores for {len(ids)} docs")
            out[qid] = dict(sorted(zip(ids, map(float, scores), strict=True), key=lambda x: -x[1]))
        return out

    def search(
        self, query: str, stage: str = "hybrid", rerank: bool = False, k: int = 10
    ) -> SearchResult:
        """One query through the pipeline: top-k hits and per-step latency (ms).

        Raises:
            ValueError: empty query, unknown stage, k outside [1, N], or rerank without
                a reranker.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the query is empty; type a question or a claim")
        self._check(stage, rerank, k)
        n = max(k, self.rerank_depth) if rerank else k
        start = time.perf_counter()
        run, timings = self.first_stage(["q"], [query], stage, n)
        if rerank:
            run, timings["rerank"] = _timed(self.rerank_run, run, {"q": query}, self.rerank_depth)
        timings["total"] = 1000 * (time.perf_counter() - start)
        return SearchResult(query, stage, rerank, self._hits(query, run["q"], k), timings)

    def run(
        self,
        qids: Sequence[str],
        queries: Sequence[str],
        stage: str,
        rerank: bool = False,
        k: int = 10,
    ) -> Run:
        """A batch of queries as a BEIR run (for evaluation): top-k per query."""
        if not qids or len(qids) != len(queries):
            raise ValueError(
                f"need matching, non-empty qids and queries; got {len(qids)}, {len(queries)}"
            )
        self._check(stage, rerank, k)
        run, _ = self.first_stage(list(qids), list(queries), stage, max(k, self.rerank_depth))
        if rerank:
            run = self.rerank_run(run, dict(zip(qids, queries, strict=True)), self.rerank_depth)
        return {q: dict(list(h.items())[:k]) for q, h in run.items()}

    def _hits(self, query: str, ranked: Mapping[str, float], k: int) -> list[Hit]:
        """Hits with snippets; relevance marks when ``query`` is a judged query's text."""
        qid = self._qid_of.get(query.strip())
        judged = self.qrels.get(qid) if qid is not None else None
        hits = []
        for rank, (doc_id, score) in enumerate(list(ranked.items())[:k], start=1):
            i = self._pos[doc_id]
            rel = None if judged is None else judged.get(doc_id, 0) > 0
            snippet = highlight(self.display_texts[i], query, analyze=self.bm25.analyze)
            hits.append(Hit(rank, doc_id, float(score), self.titles[i], snippet, rel))
        return hits

    def index_bytes(self) -> dict[str, int]:
        """Bytes held by each index: the dense (N, D) matrix and BM25's sparse score matrix.

        BM25 counts bm25s's CSR arrays (data, indices, indptr), not its vocabulary dict.
        """
        return {"bm25": self.bm25.nbytes(), "dense": int(self.doc_emb.nbytes)}


# ------------------------------------------------------------------ rendering + widgets

STAGE_LABELS = {"bm25": "BM25", "dense": "dense", "hybrid": "hybrid (RRF)"}


def timings_line(result: SearchResult) -> str:
    """``bm25 1.2 ms · encode query 8.0 ms · … · total 12.3 ms``."""
    return " · ".join(f"{name} {ms:.1f} ms" for name, ms in result.timings_ms.items())


def render_html(result: SearchResult) -> str:
    """The result list as HTML: rank, score, relevance mark, title, id, snippet."""
    stage = STAGE_LABELS[result.stage] + (" + re-rank" if result.rerank else "")
    if not result.judged:
        note = "no relevance judgments for this query"
    else:
        n_rel = sum(bool(h.relevant) for h in result.hits)
        note = f"judged query: {n_rel} relevant in the top {len(result.hits)} (✅ = relevant)"
    rows = [
        f'<tr class="embedlab-hit" data-doc-id="{html.escape(h.doc_id)}">'
        f"<td>{h.rank}</td><td>{h.score:.3f}</td>"
        f"<td>{'' if h.relevant is None else ('✅' if h.relevant else '·')}</td>"
        f"<td><b>{html.escape(h.title)}</b> <small>[{html.escape(h.doc_id)}]</small><br>"
        f"{h.snippet}</td></tr>"
        for h in result.hits
    ]
    body = "".join(rows) or '<tr><td colspan="4">no hits</td></tr>'
    return (
        f'<div class="embedlab-timings"><b>{stage}</b> for “{html.escape(result.query)}” | '
        f"{timings_line(result)} | {note}</div>"
        '<table class="embedlab-table"><tr><th>#</th><th>score</th><th>rel.</th>'
        f"<th>document</th></tr>{body}</table>"
    )


def error_html(err: BaseException) -> str:
    """One line: ``⚠ <message>`` for a ValueError, ``⚠ <Type>: <message>`` otherwise."""
    msg = " ".join(str(err).split()) or "no message"
    line = msg if isinstance(err, ValueError) else f"{type(err).__name__}: {msg}"
    return f'<p class="embedlab-error">⚠ {html.escape(line[:300])}</p>'


class SearchApp:
    """A thin ipywidgets view over a :class:`SearchEngine`.

    Every control is a public attribute, so code (or a test) can drive the app without a
    browser: ``app.query.value = "..."; app.search(); app.last.doc_ids``.
    """

    def __init__(self, engine: SearchEngine, k: int = 5, examples: Sequence[str] = ()) -> None:
        import ipywidgets as w

        self.engine, self.last = engine, None
        self.query = w.Text(
            description="Query", placeholder="a question or a claim…", continuous_update=False
        )
        self.query.layout.width = "60%"
        self.button = w.Button(description="Search", button_style="primary", icon="search")
        self.stage = w.ToggleButtons(
            options=[(v, k_) for k_, v in STAGE_LABELS.items()], value="hybrid"
        )
        self.rerank = w.Checkbox(description="re-rank", disabled=engine.reranker is None)
        self.k = w.IntSlider(value=k, min=1, max=min(50, len(engine)), description="top-k")
        self.examples = w.Dropdown(options=["(example claims)", *examples], description="Try")
        self.output = w.HTML()
        for widget, name in [
            (self.query, "query"),
            (self.button, "search"),
            (self.output, "results"),
        ]:
            widget.add_class(f"embedlab-{name}")
        self.button.on_click(lambda _: self.search())
        self.query.observe(lambda _: self.search(), names="value")  # Enter (or leaving the box)
        self.examples.observe(self._pick_example, names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.query, self.button]),
                w.HBox([self.stage, self.rerank, self.k]),
                self.examples,
                self.output,
            ]
        )

    def _pick_example(self, change: dict) -> None:
        if change["new"] != self.examples.options[0]:
            self.query.value = change["new"]  # triggers a search through the observer

    def search(self) -> SearchResult | None:
        """Search with the widgets' current values; show results or a one-line error.

        Any exception (bad input, a tokenizer or re-ranker failure) clears the previous
        results, so the page never shows hits for an earlier query under a new one.
        """
        self.last = None
        try:
            result = self.engine.search(
                self.query.value, self.stage.value, self.rerank.value, self.k.value
            )
            page = render_html(result)
        except Exception as err:  # noqa: BLE001 - a widget callback must not leave stale hits
            self.output.value = error_html(err)
            return None
        self.last, self.output.value = result, page
        return result

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
