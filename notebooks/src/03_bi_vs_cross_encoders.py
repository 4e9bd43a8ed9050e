# %% [markdown]
# **You will learn**
# - the two ways a transformer scores a pair of texts: a **bi-encoder** (two independent
#   passes, then a cosine) and a **cross-encoder** (one pass over the pair, full attention
#   between the two texts);
# - what each costs, measured: m + n forward passes against m x n, as log-log slopes;
# - SBERT's *Retrieve & Re-rank* pipeline: a bi-encoder retrieves the top n, a cross-encoder
#   re-orders them; the recall@n ceiling, nDCG@10 before and after, latency per stage;
# - SBERT's Table 2 question (is a cross-encoder more accurate on STS-B?) run fairly: same
#   start, same data, same budget, and why our answer differs from the paper's.

# %%
import random
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from datasets import Dataset
from matplotlib.patches import FancyBboxPatch
from sentence_transformers.cross_encoder import CrossEncoder

import embedlab
from embedlab.cache import encode
from embedlab.compress import interleaved_times
from embedlab.config import is_offline, profile
from embedlab.data import load_scifact, load_stsb
from embedlab.evaluate import retrieval_scores, spearman, sts_spearman
from embedlab.models import MINILM, RERANKER, load_model, load_reranker
from embedlab.rerank import fit_cross_encoder, loglog_slope, rerank
from embedlab.search import dense_search
from embedlab.train import make_loss, train

prof = profile()
sts_train, sts_test = load_stsb("train"), load_stsb("test")
scifact = load_scifact("test")
embedlab.run_line(
    [MINILM] + ([] if is_offline() else [RERANKER]),
    {
        "STS-B train": len(sts_train),
        "STS-B test": len(sts_test),
        "SciFact test queries": len(scifact.queries),
        "SciFact docs": len(scifact.doc_ids),
    },
)

# %% [markdown]
# ## 1. Two architectures
#
# A **bi-encoder** (SBERT) runs the transformer once per text and compares the two output
# vectors with a cosine: documents can be encoded once, ahead of time, and searched with a
# matrix product. A **cross-encoder** (BERT as in its paper) feeds both texts as one
# sequence, `[CLS] text A [SEP] text B [SEP]`, so every token of A attends to every token of
# B, and a small head turns the `[CLS]` state into one score. Nothing can be precomputed:
# every (query, document) pair needs its own pass.


# %%
def draw_box(ax, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    """A rounded box with centred text, in axes coordinates."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01", fc=color, ec="k"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)


def arrow(ax, x0: float, y0: float, x1: float, y1: float) -> None:
    ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "lw": 1.2})


fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, title in (
    (left, "Bi-encoder: two passes, then a cosine"),
    (right, "Cross-encoder: one pass over the pair"),
):
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.axis("off"), ax.set_title(title, fontsize=10)
for x, label in ((0.05, "query"), (0.55, "document")):
    draw_box(left, x, 0.05, 0.4, 0.1, label, "#f2f2f2")
    draw_box(left, x, 0.3, 0.4, 0.18, "transformer\n(same weights)", "#c6dbef")
    draw_box(left, x, 0.58, 0.4, 0.1, "mean pool -> u" if x < 0.5 else "mean pool -> v", "#deebf7")
    arrow(left, x + 0.2, 0.15, x + 0.2, 0.3), arrow(left, x + 0.2, 0.48, x + 0.2, 0.58)
    arrow(left, x + 0.2, 0.68, 0.5, 0.8)
draw_box(left, 0.3, 0.8, 0.4, 0.1, "cos(u, v)", "#fdd0a2")
draw_box(right, 0.1, 0.05, 0.8, 0.1, "[CLS] query [SEP] document [SEP]", "#f2f2f2")
draw_box(right, 0.1, 0.3, 0.8, 0.28, "transformer\nfull attention across both texts", "#c6dbef")
draw_box(right, 0.3, 0.8, 0.4, 0.1, "head([CLS]) -> score", "#fdd0a2")
arrow(right, 0.5, 0.15, 0.5, 0.3), arrow(right, 0.5, 0.58, 0.5, 0.8)
plt.tight_layout()

# %% [markdown]
# Takeaway: the bi-encoder's two towers never see each other (so a document vector can be
# stored), while the cross-encoder's tokens do (so it can compare words directly, but only
# pair by pair).
#
# ## 2. Cost, measured
#
# For m queries and n documents a bi-encoder needs **m + n** forward passes (plus an m x n
# matrix product, which is cheap), a cross-encoder **m x n**. We time both with m = n
# (n STS-B sentences against n others) on growing n, and fit the slope of
# log(time) against log(n): 1 means linear growth, 2 quadratic. Timing depends on the
# architecture, not the weights, so we time an *untrained* MiniLM-L6 cross-encoder: the
# same 6-layer, 384-wide shape as `cross-encoder/ms-marco-MiniLM-L-6-v2`.

# %%
bi = load_model(MINILM)
ce_shape = CrossEncoder(MINILM, num_labels=1, max_length=128, device="cpu")
queries_pool, docs_pool = list(sts_test["sentence1"]), list(sts_test["sentence2"])
sizes = [6, 12, 24, 48]
cost = []


def bi_scores(qs: list[str], ds: list[str]) -> np.ndarray:
    """m + n passes, then one (m, n) matrix product of cosines."""
    e = bi.encode(qs + ds, batch_size=64, normalize_embeddings=True)
    return e[: len(qs)] @ e[len(qs) :].T


work = {}
for n in sizes:
    qs, ds = queries_pool[:n], docs_pool[:n]
    pairs = [(q, d) for q in qs for d in ds]
    work[("bi", n)] = lambda qs=qs, ds=ds: bi_scores(qs, ds)
    work[("cross", n)] = lambda pairs=pairs: ce_shape.predict(pairs, batch_size=64)
# 3 rounds, every size of both models timed in turns; the median of each: a busy
# neighbour slows all of them alike and one unlucky sample does not bend the fit
secs = interleaved_times(work, repeats=3)
for n in sizes:
    t_bi, t_ce = secs[("bi", n)], secs[("cross", n)]
    cost.append({"n": n, "bi passes": 2 * n, "cross passes": n * n, "bi s": t_bi, "cross s": t_ce})
cost = pd.DataFrame(cost)
slope_bi, c_bi = loglog_slope(cost["n"], cost["bi s"])
slope_ce, c_ce = loglog_slope(cost["n"], cost["cross s"])

# %%
# NBVAL_IGNORE_OUTPUT
print(cost.round(3).to_string(index=False))
print(f"fitted slopes: bi-encoder {slope_bi:.2f}, cross-encoder {slope_ce:.2f}")
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(cost["n"], cost["bi s"], "o-", label=f"bi-encoder (slope {slope_bi:.2f})")
ax.loglog(cost["n"], cost["cross s"], "s-", label=f"cross-encoder (slope {slope_ce:.2f})")
ax.set_xlabel("n (queries = documents)"), ax.set_ylabel("seconds"), ax.legend()
ax.set_title("Scoring n x n pairs on the CPU")
assert slope_ce > 1.5 and slope_bi < 1.3, "cross-encoder cost should grow ~n^2, bi-encoder ~n"
assert cost["cross s"].iloc[-1] > 5 * cost["bi s"].iloc[-1], "n x n passes vs 2n (24x at n=48)"

# %% [markdown]
# Takeaway: the cross-encoder's line is about twice as steep; every doubling of n
# quadruples its work. (At the smallest n the bi-encoder's time is mostly fixed overhead,
# which pulls its fitted slope below 1.)
#
# SBERT's introduction puts this in numbers: finding the most similar pair among 10,000
# sentences takes about 65 hours with a BERT cross-encoder on a V100 GPU, about 5 seconds
# with SBERT. Our fits extrapolate the same way on a 2-core CPU (an extrapolation, not a
# measurement):

# %%
# NBVAL_IGNORE_OUTPUT
n_big = 10_000
print(
    f"n = {n_big:,}: bi-encoder ~{c_bi * n_big**slope_bi:,.0f} s, "
    f"cross-encoder ~{c_ce * n_big**slope_ce / 3600:,.0f} h (fitted power laws)"
)

# %% [markdown]
# A re-ranker avoids that explosion by scoring only each query's top n candidates: its cost
# per query grows with n, which is the knob of the pipeline. Timed on real SciFact
# (claim, abstract) pairs at the 128-token pair length our re-ranker uses:

# %%
docs_text = dict(zip(scifact.doc_ids, scifact.doc_texts, strict=True))
claim = scifact.queries[scifact.query_ids[0]]
work = {
    top_n: lambda pairs=[(claim, docs_text[d]) for d in scifact.doc_ids[:top_n]]: ce_shape.predict(
        pairs, batch_size=32
    )
    for top_n in (10, 50, 100)
}
per_query = interleaved_times(work, repeats=3)  # in turns, median of 3 each

# %%
# NBVAL_IGNORE_OUTPUT
print({f"top-{k}": f"{v * 1000:.0f} ms/query" for k, v in per_query.items()})
assert per_query[100] > 3 * per_query[10], "re-ranking 100 (10x the pairs) costs several times 10"

# %% [markdown]
# ## 3. The re-ranker we use
#
# Online (the `full` profile, or any machine that reaches the Hugging Face Hub) we load the
# published `cross-encoder/ms-marco-MiniLM-L-6-v2`, a MiniLM-L6 cross-encoder trained on
# about half a million MS MARCO queries. Offline (CI, this course's fast profile) there is
# **no pretrained cross-encoder**: no PyPI package ships one, nor a plain MLM-pretrained
# BERT to train one from. So `embedlab.models.load_reranker()` builds an honest
# **stand-in**: the body of `all-MiniLM-L6-v2` (a bi-encoder checkpoint) with a new linear
# head on `[CLS]`, trained in this run for one epoch of binary cross-entropy on SciFact
# *train* claims: each claim's cited abstracts (label 1) and its best BM25 hits that it does
# not cite (label 0), with as many pairs as the profile's training budget allows. It never
# sees a test claim. It is a stand-in for the *mechanics* of re-ranking, not for the quality
# of a real re-ranker; the cell below prints which one this run uses.

# %%
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
reranker, reranker_note = load_reranker()
train_seconds = time.perf_counter() - start
print(f"re-ranker: {reranker_note}  ({train_seconds:.0f} s to load or train)")

# %% [markdown]
# ## 4. Retrieve & re-rank on SciFact
#
# Stage 1: MiniLM encodes the corpus once (cached) and retrieves each claim's top hits.
# Whatever stage 1 misses, stage 2 cannot bring back: **recall@n is the ceiling** of a
# re-ranker that sees the top n. The curve below is measured on the full run.

# %%
doc_emb = encode(bi, scifact.doc_texts)  # (N, D)
query_texts = [scifact.queries[q] for q in scifact.query_ids]
query_emb = encode(bi, query_texts)  # (Q, D)
first_stage = dense_search(query_emb, doc_emb, scifact.query_ids, scifact.doc_ids, k=100)
ks = (1, 5, 10, 20, 50, 100)
stage1 = retrieval_scores(first_stage, scifact.qrels, ks=ks)
print(scifact.subset_note)

# %%
# NBVAL_CHECK_OUTPUT
print(f"doc embeddings {doc_emb.shape}, query embeddings {query_emb.shape}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ks, [100 * stage1[f"recall@{k}"] for k in ks], "o-", label="recall@n (re-rank ceiling)")
ax.axhline(100 * stage1["ndcg@10"], color="gray", ls="--", label="bi-encoder nDCG@10")
ax.set_xscale("log"), ax.set_xlabel("n first-stage hits"), ax.set_ylabel("x 100"), ax.legend()
ax.set_title("SciFact test: what a re-ranker of the top n could reach")
print({f"recall@{k}": round(100 * stage1[f"recall@{k}"], 2) for k in ks})

# %% [markdown]
# Takeaway: going from the top 10 to the top 100 adds relevant abstracts that a perfect
# re-ranker could lift into the top 10; past a few dozen hits the curve flattens, and each
# extra hit still costs a cross-encoder pass. (These scores are on the fast profile's
# subset corpus when it is active, which inflates them: see the note printed above.)
#
# Stage 2 re-ranks the top n. The fast profile re-ranks the top 20 of a seeded sample of
# 40 claims (800 pairs, to fit the 3-minute budget); the full profile re-ranks the top 100
# of every claim, as in the published BEIR re-ranking setup.

# %%
top_n, n_sample = (20, 40) if prof.name == "fast" else (100, len(scifact.query_ids))
sample = sorted(random.Random(0).sample(scifact.query_ids, n_sample))
run1 = {q: first_stage[q] for q in sample}
qrels_s = {q: scifact.qrels[q] for q in sample}
t0 = time.perf_counter()
q_emb = bi.encode([scifact.queries[q] for q in sample], normalize_embeddings=True)
dense_search(q_emb, doc_emb, sample, scifact.doc_ids, k=top_n)
latency_1 = (time.perf_counter() - t0) / n_sample
t0 = time.perf_counter()
run2 = rerank(reranker, scifact.queries, run1, docs_text, top_n=top_n)
latency_2 = (time.perf_counter() - t0) / n_sample
before = retrieval_scores(run1, qrels_s, ks=(10, top_n))
after = retrieval_scores(run2, qrels_s, ks=(10, top_n))

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"latency per query: stage 1 (encode claim + exact search) {1000 * latency_1:.1f} ms, "
    f"stage 2 (re-rank top {top_n}) {1000 * latency_2:.0f} ms"
)

# %%
pipeline = pd.DataFrame({"bi-encoder only": before, f"+ re-rank top {top_n}": after}).T[
    ["ndcg@10", "mrr@10", "recall@10", f"recall@{top_n}"]
]
print(f"{n_sample} claims; re-ranker: {reranker_note}")
print((100 * pipeline).round(2).to_string())
delta = 100 * (after["ndcg@10"] - before["ndcg@10"])
print(f"re-ranking {'raised' if delta > 0 else 'lowered'} nDCG@10 by {abs(delta):.2f} points")
assert after[f"recall@{top_n}"] == before[f"recall@{top_n}"], "re-ranking cannot change recall@n"
assert all(0 <= v <= 1 for v in after.values())
if not is_offline():  # the published re-ranker should not lose to its first stage
    assert after["ndcg@10"] > before["ndcg@10"] - 0.03

# %% [markdown]
# recall@n is identical before and after by construction: re-ranking only re-orders the n
# candidates. What moves is the order inside them, and so nDCG@10 and MRR@10.
#
# **Read the re-ranked row for what it is.** Offline it is the stand-in's score (the line
# printed above says whether it raised or lowered nDCG@10), and the stand-in is far from a
# trained re-ranker: a few hundred training pairs, a head that starts random, a `[CLS]`
# vector MiniLM never trained. A colleague's longer offline run of the same recipe (all
# 3,346 pairs, 256 tokens, 386 s on 2 cores) also lowered nDCG@10, to 32.6 against the
# bi-encoder's 64.5 on the full corpus: at the budgets tried so far, this recipe does not
# make a useful re-ranker. The published figure for the
# real model is different in kind: `cross-encoder/ms-marco-MiniLM-L-6-v2` re-ranking BM25's
# top 100 on SciFact (full corpus) is reported at about **68.8** nDCG@10, against 67.6 for
# BM25 alone in the same table (model card of `juanluisdb/MiniLM-L-6-rerank-m3`, BEIR
# evaluation). That gain comes from training on hundreds of thousands of labelled queries,
# which no stand-in trained in a minute on a CPU can imitate.
#
# **Try it**
# 1. Online, re-rank BM25's top 100 instead of the bi-encoder's
#    (`embedlab.search.BM25(scifact.doc_ids, scifact.doc_texts).search(...)`) with the full
#    corpus (`load_scifact("test", corpus="full")`) and compare with the published 68.8.
# 2. Change `top_n` to 10 and 50. How do latency and nDCG@10 move, and where does the
#    recall ceiling stop mattering?
# 3. Blend the two stages: rank by `0.5 * z(bi) + 0.5 * z(cross)` with per-query z-scores.
#    Does the stand-in still hurt when it only nudges the bi-encoder's order?
#
# ## 5. SBERT's Table 2, run fairly
#
# SBERT's Table 2 reports STS-B test Spearman x 100 (mean of 10 seeds). Trained on STS-B
# alone, the base-size cross-encoder BERT-STSb-base (**84.30**) and bi-encoder
# SBERT-STSb-base (**84.67**) tie within their spread; the cross-encoder wins at large size
# (85.64 vs 84.45) and clearly after NLI pre-training: BERT-NLI-STSb-base **88.33** vs
# SBERT-NLI-STSb-base 85.35, BERT-NLI-STSb-large **88.77** vs SBERT-NLI-STSb-large 86.10.
# We repeat the comparison with one start for both,
# the `all-MiniLM-L6-v2` checkpoint, the same seeded slice of STS-B train (scores / 5 as
# labels), one epoch, batch 16, the same learning rate: the bi-encoder with SBERT's
# cosine-regression loss, the cross-encoder with binary cross-entropy (plus a higher
# learning rate for its new head, which starts random).

# %%
n_sts = max(64, round(len(sts_train) * prof.train_steps_scale))
sts_slice = sts_train.shuffle(seed=0).select(range(n_sts))
sts_pairs = Dataset.from_dict(
    {
        "sentence1": sts_slice["sentence1"],
        "sentence2": sts_slice["sentence2"],
        "label": [s / 5 for s in sts_slice["score"]],
    }
)
s1, s2, gold = list(sts_test["sentence1"]), list(sts_test["sentence2"]), sts_test["score"]
sbert = load_model(MINILM)
one_epoch = -(-len(sts_pairs) // 16)  # ceil: every pair once, batch 16, as the cross-encoder
train(sbert, sts_pairs, make_loss("regression", sbert), one_epoch, learning_rate=1e-4, seed=0)
bert_ce = CrossEncoder(MINILM, num_labels=1, max_length=128, device="cpu")
bert_ce = fit_cross_encoder(bert_ce, sts_pairs, lr=1e-4, head_lr=1e-3, seed=0)
ce_pred = bert_ce.predict(list(zip(s1, s2, strict=True)), batch_size=64)
table2 = {
    "bi-encoder (SBERT-style)": 100 * sts_spearman(encode(sbert, s1), encode(sbert, s2), gold),
    "cross-encoder (BERT-style)": 100 * spearman(ce_pred, gold),
}

# %%
# NBVAL_CHECK_OUTPUT
print(f"training pairs: {n_sts} of {len(sts_train)} STS-B train pairs, 1 epoch, batch 16")

# %%
published_t2 = {"bi-encoder (SBERT-style)": 84.67, "cross-encoder (BERT-style)": 84.30}
t2 = pd.DataFrame({"measured": table2, "SBERT Table 2 (STSb-base)": published_t2}).round(2)
print(t2.to_string())
print(
    "start: all-MiniLM-L6-v2 already scores 82.03 as a bi-encoder before any STS-B training "
    "(MTEB; reproduced in notebook 01); the cross-encoder's head starts random."
)
assert table2["bi-encoder (SBERT-style)"] > table2["cross-encoder (BERT-style)"]
assert table2["bi-encoder (SBERT-style)"] > 75

# %% [markdown]
# **This disagrees with the paper**, and the measurement says why. The paper starts both
# models from BERT, which was trained for neither use; here both start from
# `all-MiniLM-L6-v2`, which is already a trained bi-encoder (82.03 before any STS-B step).
# The bi-encoder only has to adapt; the cross-encoder must learn its scoring head from a
# random start and use a `[CLS]` vector that MiniLM's training never used, from the few
# hundred pairs printed above (the paper used all 5,749, for 4 epochs, and 10 random seeds).
# The full profile trains on all pairs for one epoch; a colleague's run of that setting gave
# 82.4 for the cross-encoder against 85.4 for the bi-encoder, still the reverse of Table 2.
# A fair test of the paper's claim needs a start that favours neither side (an MLM-only
# BERT), which this offline machine does not have.

# %% [markdown]
# ## Summary
#
# Measured in this run against published figures (Spearman or nDCG@10, x 100):

# %%
summary = pd.DataFrame(
    [
        (
            "STS-B test, bi-encoder fine-tuned from MiniLM",
            table2["bi-encoder (SBERT-style)"],
            "84.67 (SBERT-STSb-base)",
        ),
        (
            "STS-B test, cross-encoder fine-tuned from MiniLM",
            table2["cross-encoder (BERT-style)"],
            "84.30 (BERT-STSb-base); 88.77 (BERT-NLI-STSb-large)",
        ),
        (
            f"SciFact nDCG@10, bi-encoder, {n_sample} claims",
            100 * before["ndcg@10"],
            "64.51 MiniLM (MTEB, full corpus)",
        ),
        (
            f"SciFact nDCG@10, + re-rank top {top_n}",
            100 * after["ndcg@10"],
            "68.8 ms-marco-MiniLM-L-6-v2 on BM25 top 100",
        ),
        (f"SciFact recall@{top_n} (re-rank ceiling)", 100 * before[f"recall@{top_n}"], ""),
        ("cost slope, bi-encoder (m = n)", slope_bi, "1"),
        ("cost slope, cross-encoder (m = n)", slope_ce, "2"),
    ],
    columns=["what", "measured", "published / expected"],
)
summary["measured"] = summary["measured"].round(2)
print(f"re-ranker: {reranker_note}\n{scifact.subset_note}\n")
print(summary.to_string(index=False))
sts_setting = f"MiniLM start, {n_sts:,} STS-B train pairs, 1 epoch"
embedlab.report_claims(
    "03",
    [
        {
            "claim": "STS-B test, bi-encoder fine-tuned (SBERT Table 2)",
            "source": "SBERT Table 2 (SBERT-STSb-base)",
            "published": 84.67,
            "measured": table2["bi-encoder (SBERT-style)"],
            "setting": sts_setting,
        },
        {
            "claim": "STS-B test, cross-encoder fine-tuned (SBERT Table 2)",
            "source": "SBERT Table 2 (BERT-STSb-base)",
            "published": 84.30,
            "measured": table2["cross-encoder (BERT-style)"],
            "setting": sts_setting,
        },
        {
            "claim": f"SciFact nDCG@10 after re-ranking the top {top_n}",
            "source": "SBERT docs (ms-marco-MiniLM-L-6-v2)",
            "published": 68.8,
            "measured": 100 * after["ndcg@10"],
            "setting": f"{n_sample} claims; "
            + ("offline stand-in re-ranker" if "STAND-IN" in reranker_note else "published model"),
        },
        {
            "claim": "cross-encoder cost slope in m = n (log-log)",
            "source": "SBERT paper: m x n passes",
            "published": 2.0,
            "measured": slope_ce,
            "setting": "timed on this CPU",
        },
    ],
)

# %% [markdown]
# - A bi-encoder costs m + n passes, a cross-encoder m x n: the measured log-log slopes
#   are about 1 and 2, and re-ranking cost per query grows with the top n it scores.
# - Re-ranking can only re-order stage 1's candidates: recall@n is its ceiling, unchanged
#   by construction. Whether nDCG@10 rises depends entirely on the re-ranker: the published
#   one is reported to gain on SciFact; what our offline stand-in did is printed in the
#   table (never read it as a published cross-encoder's quality).
# - Same start, same data, same budget: from a bi-encoder checkpoint the bi-encoder wins on
#   STS-B, the reverse of SBERT's Table 2, because the start and the budget favour it.
#
# ## Exercises
#
# **Exercise 1.** Write `forward_passes(m, n, kind)` returning the forward passes a
# bi-encoder (`"bi"`) or cross-encoder (`"cross"`) needs to score m queries against n
# documents, and the ratio for SBERT's example of 10,000 sentences against each other.


# %%
def forward_passes(m: int, n: int, kind: str) -> int:
    """Passes to score every (query, document) pair; bi-encoders reuse document vectors."""
    if kind not in {"bi", "cross"}:
        raise ValueError(f"kind={kind!r}; expected 'bi' or 'cross'")
    return m + n if kind == "bi" else m * n


assert forward_passes(3, 1000, "bi") == 1003 and forward_passes(3, 1000, "cross") == 3000
assert forward_passes(10_000, 10_000, "cross") // forward_passes(10_000, 10_000, "bi") == 5000

# %% [markdown]
# **Exercise 2.** Re-rank one claim's top 5 with `CrossEncoder.rank` (the library's
# one-query API) and check that it orders the documents as our `rerank` does.

# %%
qid = sample[0]
top5 = sorted(run1[qid], key=run1[qid].get, reverse=True)[:5]
ranked = reranker.rank(scifact.queries[qid], [docs_text[d] for d in top5])
library_order = [top5[r["corpus_id"]] for r in ranked]
ours = rerank(reranker, scifact.queries, {qid: run1[qid]}, docs_text, top_n=5)[qid]
assert library_order == sorted(ours, key=ours.get, reverse=True)

# %% [markdown]
# **Exercise 3.** How many of the sampled claims have *no* relevant abstract in the top
# `top_n`? For those, no re-ranker can score above 0 nDCG@10.

# %%
lost = [q for q in sample if not set(run2[q]) & set(scifact.qrels[q])]
print(f"{len(lost)} of {n_sample} claims have no relevant abstract in the top {top_n}")
for q in lost:
    assert retrieval_scores({q: run2[q]}, {q: scifact.qrels[q]})["ndcg@10"] == 0
