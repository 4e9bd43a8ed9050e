"""Retrieve & re-rank: cross-encoder scoring of a first stage's top hits, and its costs.

Shapes: Q queries, n first-stage hits re-ranked per query, P = Q * n scored pairs.
A *run* is BEIR's result format ``{query_id: {doc_id: score}}`` (see :mod:`embedlab.search`).

The notebook ``03_bi_vs_cross_encoders`` uses these helpers; the cross-encoder it
re-ranks with comes from :func:`load_reranker` (the published
``cross-encoder/ms-marco-MiniLM-L-6-v2`` online; offline, the SciFact re-ranker that
:func:`build_scifact_reranker` trains once and caches, used interpolated with stage 1).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from embedlab.common import Run
from embedlab.config import artifacts_dir


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
    from sentence_transformers.cross_encoder import losses

    from embedlab.train import fit

    _check_pair_dataset(train, ("sentence1", "sentence2", "label"))
    if loss not in {"bce", "mse"}:
        raise ValueError(f"loss={loss!r}; expected 'bce' or 'mse'")
    fn = losses.BinaryCrossEntropyLoss(model) if loss == "bce" else losses.MSELoss(model)
    fit(model, train, fn, desc="cross-encoder", epochs=1, batch_size=batch_size, lr=lr,
        seed=seed, head_lr=head_lr, head_pattern=r"classifier|pooler")  # fmt: skip
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


# ------------------------------------------------------------------ a re-ranker that learns


def zscore_per_query(run: Run) -> Run:
    """Each query's scores minus their mean, over their standard deviation (0 if constant).

    Makes two stages' scores comparable before mixing them: a cosine and a logit live on
    different scales. Returns: a run with the same hits.
    """
    out: Run = {}
    for qid, hits in run.items():
        v = np.array(list(hits.values()), dtype=float)
        sd = v.std()
        z = (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)
        out[qid] = dict(zip(hits, z.tolist(), strict=True))
    return out


def interpolate(first: Run, second: Run, weight: float) -> Run:
    """``(1 - weight) * z(first) + weight * z(second)`` per query, over second's hits.

    weight 0 keeps stage 1's order (of the re-ranked hits), 1 is the re-ranker alone.
    Production equivalent: score fusion in Vespa / Elasticsearch rank profiles.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    missing = [q for q in second if q not in first or set(second[q]) - set(first[q])]
    if missing:
        raise ValueError(f"{len(missing)} query(ies) re-ranked hits absent from stage 1")
    z1 = zscore_per_query({q: {d: first[q][d] for d in second[q]} for q in second})
    z2 = zscore_per_query(second)
    return {q: {d: (1 - weight) * z1[q][d] + weight * z2[q][d] for d in second[q]} for q in second}


RERANKER_SETTINGS = {
    "version": 2,
    "start": "sentence-transformers/all-MiniLM-L6-v2",
    "max_length": 128,  # tokens per (claim, abstract) pair
    "negatives": 3,  # hard negatives per cited abstract: BM25 top 20 over the full corpus
    "objective": "listwise",  # softmax over (cited, 3 negatives): a ranking loss
    "epochs": 1,
    "batch_groups": 4,  # 4 groups x 4 pairs = 16 pairs per step
    "lr": 5e-5,
    "head_lr": 1e-3,
    "train_top": 3,  # layers trained; embeddings and lower layers frozen
    "heldout": 150,  # train claims held out to choose the interpolation weight
    "depth": 20,  # first-stage hits re-ranked
    "seed": 0,
}


def reranker_name(settings: dict) -> str:
    """Cache folder name: a content hash of every setting that changes the model."""
    from embedlab.common import settings_key

    return f"scifact-reranker-{settings_key(settings)}"


def split_train_claims(qids: Sequence[str], heldout: int, seed: int) -> tuple[list, list]:
    """(training claims, held-out claims): a seeded split of SciFact-train claim ids."""
    import random

    ids = sorted(qids)
    random.Random(seed).shuffle(ids)
    if not 0 < heldout < len(ids):
        raise ValueError(f"heldout must be in (0, {len(ids)}), got {heldout}")
    return sorted(ids[heldout:]), sorted(ids[:heldout])


def listwise_groups(beir, first_stage: Run, qids: Sequence[str], negatives: int):
    """(claims, abstracts) lists in groups of 1 + negatives: a cited abstract, then the
    claim's best first-stage hits that it does not cite. Claims with too few are skipped."""
    text = dict(zip(beir.doc_ids, beir.doc_texts, strict=True))
    s1, s2 = [], []
    for qid in qids:
        ranked = sorted(first_stage[qid], key=first_stage[qid].get, reverse=True)
        negs = [d for d in ranked if d not in beir.qrels[qid]][:negatives]
        if len(negs) < negatives:
            continue
        for pos in beir.qrels[qid]:
            s1 += [beir.queries[qid]] * (1 + negatives)
            s2 += [text[pos]] + [text[d] for d in negs]
    return s1, s2


def dense_first_stage(beir, qids: Sequence[str], depth: int) -> Run:
    """Stage 1 as the notebooks run it: MiniLM (cached embeddings), exact top ``depth``."""
    from embedlab.cache import encode
    from embedlab.models import MINILM, load_model
    from embedlab.search import dense_search

    bi = load_model(MINILM)
    doc_emb = encode(bi, beir.doc_texts)
    q_emb = encode(bi, [beir.queries[q] for q in qids])
    return dense_search(q_emb, doc_emb, list(qids), beir.doc_ids, k=depth)


def choose_weight(first: Run, second: Run, qrels, grid: Sequence[float] | None = None):
    """The interpolation weight with the best mean nDCG@10 on held-out claims.

    Returns: (weight, {weight: nDCG@10 x 100}) over the grid (default 0, 0.1, ..., 1).
    """
    from embedlab.evaluate import ndcg_at_10

    grid = [round(0.1 * i, 1) for i in range(11)] if grid is None else list(grid)
    table = {w: ndcg_at_10(interpolate(first, second, w), qrels) for w in grid}
    return max(table, key=lambda w: (table[w], -abs(w - 0.5))), table


def train_scifact_reranker(settings: dict | None = None, steps: int | None = None):
    """Train the offline SciFact re-ranker (no caching): returns (CrossEncoder, info).

    Start: all-MiniLM-L6-v2's body (a bi-encoder checkpoint: offline there is no
    pretrained cross-encoder) + a new head on [CLS]. Data: SciFact *train* claims minus
    ``heldout`` of them; each cited abstract with the claim's 3 best BM25 hits (full
    corpus) it does not cite. Loss: listwise softmax cross-entropy over each group; the
    head learns at ``head_lr``, only the top ``train_top`` layers train. Then the weight
    that mixes z-normalised stage-1 and re-ranker scores is chosen on the held-out train
    claims (never on test). ``steps`` overrides one epoch (a short live demo).

    Returns: (model, info) with info = {settings, steps, seconds, weight, heldout_ndcg}.
    """
    from sentence_transformers.cross_encoder import CrossEncoder

    from embedlab.data import load_scifact, subset_doc_ids
    from embedlab.search import BM25
    from embedlab.train import freeze_lower_layers

    cfg = {**RERANKER_SETTINGS, **(settings or {})}
    train = load_scifact("train", corpus="full")
    fit_ids, held_ids = split_train_claims(list(train.qrels), cfg["heldout"], cfg["seed"])
    bm25 = BM25(train.doc_ids, train.doc_texts)
    first = bm25.search(fit_ids, [train.queries[q] for q in fit_ids], k=20)
    s1, s2 = listwise_groups(train, first, fit_ids, cfg["negatives"])
    group = 1 + cfg["negatives"]
    n_steps = steps or max(1, cfg["epochs"] * (len(s1) // group) // cfg["batch_groups"])
    torch_seed(cfg["seed"])
    model = CrossEncoder(cfg["start"], num_labels=1, max_length=cfg["max_length"], device="cpu")
    freeze_lower_layers(model.transformers_model, cfg["train_top"])
    for name, p in model.transformers_model.named_parameters():
        if "classifier" in name or "pooler" in name:
            p.requires_grad_(True)
    from embedlab.pairtrain import train_cross_encoder

    log = train_cross_encoder(
        model,
        s1,
        s2,
        np.zeros(len(s1)),
        "listwise",
        n_steps,
        batch_size=cfg["batch_groups"] * group,
        lr=cfg["lr"],
        head_lr=cfg["head_lr"],
        seed=cfg["seed"],
        group_size=group,
    )
    # choose the interpolation weight on held-out train claims, stage 1 as in the notebooks
    held = {q: train.qrels[q] for q in held_ids}
    ids = subset_doc_ids(train.corpus, held, 1000)
    sub = type(train)(
        "scifact", "train-heldout", {d: train.corpus[d] for d in ids}, train.queries, held, ""
    )
    stage1 = dense_first_stage(sub, held_ids, cfg["depth"])
    sub_text = dict(zip(sub.doc_ids, sub.doc_texts, strict=True))
    stage2 = rerank(model, train.queries, stage1, sub_text, top_n=cfg["depth"])
    weight, table = choose_weight(stage1, stage2, held)
    info = {
        "settings": cfg,
        "steps": n_steps,
        "pairs": len(s1),
        "seconds": round(log.seconds, 1),
        "weight": weight,
        "heldout_ndcg": {str(w): round(v, 2) for w, v in table.items()},
    }
    return model, info


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_scifact_reranker(settings: dict | None = None):
    """The offline SciFact re-ranker, trained once and cached under :func:`embedlab.config.artifacts_dir`.

    Keyed by a content hash of its settings; ``make artifacts`` builds it (a few minutes on
    a 2-core CPU) before the notebooks run. See :func:`train_scifact_reranker`.

    Returns: (CrossEncoder, info dict).
    """
    import json

    from sentence_transformers.cross_encoder import CrossEncoder

    from embedlab.train import cached_model

    cfg = {**RERANKER_SETTINGS, **(settings or {})}

    def build():
        model, info = train_scifact_reranker(cfg)
        model._embedlab_info = info
        return model, {"embedlab_reranker.json": json.dumps(info, indent=1)}

    name = reranker_name(cfg)
    model = cached_model(
        name, build, load=lambda p: CrossEncoder(p, device="cpu"), root=artifacts_dir()
    )
    info = getattr(model, "_embedlab_info", None)
    if info is None:
        info = json.loads((artifacts_dir() / name / "embedlab_reranker.json").read_text())
    return model, info


OFFLINE_NOTE = (
    "offline re-ranker (no pretrained cross-encoder offline): all-MiniLM-L6-v2's body + a new "
    "[CLS] head, trained listwise on {pairs:,} SciFact-train (claim, abstract) pairs with BM25 "
    "hard negatives, {steps} steps; stage-1 weight chosen on {heldout} held-out train claims"
)


def load_reranker(max_length: int | None = None):
    """The re-ranker of notebooks 03 and 10 and a one-line description of what it is.

    Online: the published cross-encoder :data:`embedlab.models.RERANKER` (MiniLM-L6
    trained on MS MARCO), with the profile's length cap. Offline, where no pretrained
    cross-encoder exists (no PyPI package ships one), the SciFact re-ranker of
    :func:`build_scifact_reranker` (built once by ``make artifacts``).

    Returns: (``CrossEncoder``, description to print wherever its scores are shown).
    """
    from embedlab.config import is_offline
    from embedlab.models import RERANKER, load_cross_encoder

    if is_offline():
        model, info = build_scifact_reranker()
        note = OFFLINE_NOTE.format(
            pairs=info["pairs"], steps=info["steps"], heldout=info["settings"]["heldout"]
        )
        return model, note
    return load_cross_encoder(RERANKER, max_length), f"{RERANKER} (published; trained on MS MARCO)"


if __name__ == "__main__":  # python -m embedlab.rerank build: the `make artifacts` step
    import sys

    import embedlab

    embedlab.setup()
    if sys.argv[1:] != ["build"]:
        raise SystemExit("usage: python -m embedlab.rerank build")
    t0 = time.perf_counter()
    _, built = build_scifact_reranker()
    print(f"SciFact re-ranker ready in {time.perf_counter() - t0:.0f} s: {built}")
