"""embedlab.app: the search engine and its widget view, driven without a browser."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from embedlab.app import (
    SearchApp,
    SearchEngine,
    bi_encoder_reranker,
    highlight,
    load_folder,
    query_stems,
    render_html,
)

DOCS = {
    "d1": ("Vaccines and immunity", "Vaccination raises antibody levels against measles."),
    "d2": ("Coffee and sleep", "Drinking coffee late delays sleep onset in adults."),
    "d3": ("Gut bacteria", "The gut microbiome shapes immune responses in mice."),
    "d4": ("Exercise", "Regular exercise lowers blood pressure in older adults."),
}
QUERIES = {"q1": "Coffee delays sleep", "q2": "vaccine antibody response"}
QRELS = {"q1": {"d2": 1}, "q2": {"d1": 1}}


class HashEncoder(torch.nn.Module):
    """A deterministic bag-of-words encoder with the SentenceTransformer calls we use."""

    prompts: dict[str, str] = {}
    max_seq_length = 64

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.scale = torch.nn.Parameter(torch.ones(1))  # gives the cache a fingerprint

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().replace(".", " ").split():
            v[int(hashlib.md5(word[:5].encode()).hexdigest(), 16) % self.dim] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-9)

    def encode(self, texts, prompt=None, normalize_embeddings=True, **_) -> np.ndarray:
        return np.stack([self._vec((prompt or "") + t) for t in texts])


@pytest.fixture
def engine(tmp_home) -> SearchEngine:
    ids = list(DOCS)
    titles, texts = zip(*DOCS.values(), strict=True)
    enc = HashEncoder()
    return SearchEngine(
        ids,
        list(titles),
        [f"{t} {x}" for t, x in DOCS.values()],
        enc,
        reranker=bi_encoder_reranker(enc),
        qrels=QRELS,
        queries=QUERIES,
        display_texts=list(texts),
        rerank_depth=3,
    )


@pytest.mark.parametrize("stage", ["bm25", "dense", "hybrid"])
def test_every_stage_finds_the_obvious_document(engine, stage):
    result = engine.search("coffee sleep", stage=stage, k=2)
    assert result.doc_ids[0] == "d2"
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert result.timings_ms["total"] >= 0 and len(result.timings_ms) >= 2


def test_hybrid_times_each_step_and_rerank_adds_its_own(engine):
    result = engine.search("coffee sleep", stage="hybrid", rerank=True, k=2)
    assert {"bm25", "encode query", "dense scan", "rrf fusion", "rerank", "total"} <= set(
        result.timings_ms
    )
    assert result.rerank and len(result.hits) == 2


def test_rerank_reorders_by_the_reranker_scores(engine):
    engine.reranker = lambda q, docs: [float("Exercise" in d) for d in docs]
    result = engine.search("coffee sleep adults", stage="dense", rerank=True, k=3)
    assert result.doc_ids[0] == "d4"


def test_relevance_marks_only_for_judged_queries(engine):
    judged = engine.search(QUERIES["q1"], stage="bm25", k=3)
    assert judged.judged and judged.hits[0].relevant is True
    assert all(h.relevant is False for h in judged.hits[1:])
    free = engine.search("coffee", stage="bm25", k=1)
    assert not free.judged and free.hits[0].relevant is None


def test_batch_run_matches_single_searches(engine):
    run = engine.run(list(QUERIES), list(QUERIES.values()), stage="hybrid", k=2)
    assert list(run) == ["q1", "q2"] and all(len(h) == 2 for h in run.values())
    assert next(iter(run["q1"])) == engine.search(QUERIES["q1"], "hybrid", k=2).doc_ids[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"query": "   "}, "empty"),
        ({"query": "coffee", "stage": "sparse"}, "unknown stage"),
        ({"query": "coffee", "k": 0}, "between 1"),
        ({"query": "coffee", "k": 5}, "between 1"),
    ],
)
def test_bad_search_input_raises(engine, kwargs, message):
    with pytest.raises(ValueError, match=message):
        engine.search(**kwargs)


def test_rerank_without_reranker_raises(engine):
    engine.reranker = None
    with pytest.raises(ValueError, match="no reranker"):
        engine.search("coffee", rerank=True)


def test_reranker_returning_wrong_length_raises(engine):
    engine.reranker = lambda q, docs: [1.0]
    with pytest.raises(ValueError, match="scores for"):
        engine.search("coffee sleep adults", stage="bm25", rerank=True, k=2)


def test_engine_rejects_mismatched_corpus():
    with pytest.raises(ValueError, match="non-empty corpus"):
        SearchEngine(["a"], [], ["text"], HashEncoder(), doc_emb=np.ones((1, 4)))


def test_index_bytes(engine):
    sizes = engine.index_bytes()
    assert sizes == {"dense": 4 * 64 * 4, "bm25": engine.bm25.nbytes()}
    assert sizes["bm25"] > 0


def test_app_uses_only_the_public_bm25_interface():
    """No private state of BM25 or bm25s, no copy of its stemmer or stop-word list."""
    import ast
    import inspect

    import embedlab.app

    tree = ast.parse(inspect.getsource(embedlab.app))
    foreign = [  # obj._x where obj is not the class's own self (e.g. self.bm25._index)
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not n.attr.endswith("_")  # __dunder__ and IPython's _repr_*_ protocols
        and not (isinstance(n.value, ast.Name) and n.value.id == "self")
    ]
    assert foreign == []
    imported = {
        a.name.split(".")[0] if isinstance(n, ast.Import) else (n.module or "").split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not imported & {"bm25s", "Stemmer"}


def test_highlight_marks_stems_and_escapes_html():
    out = highlight("Vaccination <b>and</b> vaccines work.", "vaccine")
    assert "<mark>vaccines</mark>" in out and "&lt;b&gt;" in out
    assert "<mark>and</mark>" not in out  # stop words are not highlighted
    assert query_stems("The coffee drinkers") == {"coffe", "drinker"}
    long = "word " * 200 + "coffee here"
    assert "<mark>coffee</mark>" in highlight(long, "coffee", width=60)
    with pytest.raises(ValueError, match="width"):
        highlight("text", "q", width=5)


def test_highlight_marks_what_the_given_analyzer_matches():
    from embedlab.search import BM25

    unstemmed = BM25(["a"], ["vaccines"], stem=False).analyze
    out = highlight("A vaccine, two vaccines.", "vaccines", analyze=unstemmed)
    assert out == "A vaccine, two <mark>vaccines</mark>."  # no stemming: vaccine differs


def test_render_html_has_rows_marks_and_timings(engine):
    page = render_html(engine.search(QUERIES["q1"], stage="hybrid", k=2))
    assert page.count('class="embedlab-hit"') == 2
    assert "✅" in page and "total" in page and "judged query" in page


def test_load_folder_reads_txt_and_md(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Notes on tea\nGreen tea has caffeine.")
    (tmp_path / "sub" / "b.txt").write_text("\n\nplain text file")
    (tmp_path / "skip.py").write_text("print('no')")
    (tmp_path / "empty.txt").write_text("  ")
    ids, titles, texts = load_folder(tmp_path)
    assert ids == ["a.md", "sub/b.txt"] and titles == ["Notes on tea", "plain text file"]
    assert texts[0].startswith("# Notes")


def test_load_folder_rejects_missing_or_empty(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_folder(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(ValueError, match=r"no non-empty \.txt or \.md"):
        load_folder(tmp_path)


def test_engine_from_folder(tmp_path, tmp_home):
    for name, (title, text) in DOCS.items():
        (tmp_path / f"{name}.txt").write_text(f"{title}\n{text}")
    eng = SearchEngine.from_folder(tmp_path, HashEncoder())
    assert eng.search("gut microbiome", stage="hybrid", k=1).doc_ids == ["d3.txt"]


def test_app_is_driven_through_its_widgets(engine):
    app = SearchApp(engine, k=2, examples=list(QUERIES.values()))
    app.stage.value = "bm25"
    app.query.value = "coffee sleep"  # the observer runs the search, as Enter does
    assert app.last is not None and app.last.doc_ids[0] == "d2"
    assert "embedlab-hit" in app.output.value
    app.stage.value, app.rerank.value, app.k.value = "dense", True, 3
    app.button.click()
    assert app.last.rerank and len(app.last.hits) == 3
    app.examples.value = QUERIES["q2"]
    assert app.query.value == QUERIES["q2"] and app.last.hits[0].relevant is True


def test_app_shows_input_errors_instead_of_raising(engine):
    app = SearchApp(engine)
    app.query.value = "coffee"
    app.query.value = "   "
    assert app.last is None and "empty" in app.output.value
    engine.reranker = None
    assert SearchApp(engine).rerank.disabled


@pytest.mark.parametrize("stage", ["bm25", "dense"])
def test_app_clears_stale_results_when_the_pipeline_raises(engine, stage):
    app = SearchApp(engine, k=2)
    app.stage.value = stage
    app.query.value = "coffee sleep"
    assert app.last is not None and "embedlab-hit" in app.output.value

    def broken(*_args, **_kwargs):
        raise RuntimeError("tokenizer exploded\non two lines")

    engine.encoder.encode = broken  # a tokenizer failure (dense stage)
    engine.reranker = broken  # a re-ranker failure
    app.rerank.value = True
    app.query.value = "vaccine antibody"
    assert app.last is None
    assert "embedlab-hit" not in app.output.value, "the previous query's hits must go"
    assert "RuntimeError: tokenizer exploded on two lines" in app.output.value
    assert app.output.value.count("<p") == 1


def test_engine_rejects_duplicate_doc_ids(tmp_home):
    with pytest.raises(ValueError, match="doc ids must be unique; 'd1'"):
        SearchEngine(["d1", "d1"], ["a", "b"], ["x y", "z w"], HashEncoder())


def test_load_folder_ignores_files_that_resolve_outside_it(tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("private key material", encoding="utf-8")
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text("# Alpha\nbody", encoding="utf-8")
    (notes / "sub" / "b.txt").write_text("beta", encoding="utf-8")
    (notes / "link.txt").symlink_to(outside / "key.txt")
    (notes / "linked-dir").symlink_to(outside, target_is_directory=True)
    (notes / "inner.txt").symlink_to(notes / "a.md")  # resolves inside: kept
    ids, _, texts = load_folder(notes)
    assert ids == ["a.md", "inner.txt", "sub/b.txt"]
    assert not any("private" in t for t in texts)


def _mirror_ready() -> bool:
    from embedlab.config import is_offline, mirror_dir

    return is_offline() and (mirror_dir() / "manifest.json").exists()


@pytest.mark.skipif(not _mirror_ready(), reason="needs the offline model mirror (make offline)")
@pytest.mark.slow
def test_real_model_on_scifact_like_abstracts(tmp_path, monkeypatch):
    """MiniLM over a few SciFact-like abstracts: dense ranks the paraphrase first."""
    from embedlab.config import mirror_dir
    from embedlab.models import MINILM, load_model

    monkeypatch.setenv("EMBEDLAB_MIRROR_DIR", str(mirror_dir()))
    monkeypatch.setenv("EMBEDLAB_HOME", str(tmp_path / "home"))

    model = load_model(MINILM)
    eng = SearchEngine(
        list(DOCS), [t for t, _ in DOCS.values()], [x for _, x in DOCS.values()], model
    )
    assert eng.search("Does caffeine keep people awake?", "dense", k=1).doc_ids == ["d2"]
    assert eng.doc_emb.shape == (4, 384)
