# %% [markdown]
# **You will learn**
# - E5's recipe in the paper's own terms: weak pairs harvested at scale (CCPairs),
#   consistency-based filtering, contrastive pre-training with in-batch negatives, then
#   fine-tuning with hard negatives;
# - how to build weak (title -> abstract) pairs from a corpus, inject a known fraction of
#   noise, and measure the precision and recall of a consistency filter against it;
# - whether weak pairs teach anything, and whether filtering pays: the same start trained
#   on clean, noisy and filtered pairs, evaluated on SciFact claims (a query distribution
#   the titles never showed it), with 95% intervals;
# - what E5's `query: ` / `passage: ` prefixes do, measured on retrieval (SciFact) and on
#   a symmetric task (STS-B), through sentence-transformers' `prompts` mechanism.
#
# *Offline note:* without the Hugging Face Hub, `intfloat/multilingual-e5-small` is a
# **dequantized 4-bit build** (the header line below marks it). Its scores sit close to,
# not exactly on, the published full-precision ones; section 5 compares them.

# %%
import copy
import random
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from tqdm.auto import tqdm

import embedlab
from embedlab.cache import encode
from embedlab.curation import (
    consistency_filter,
    filter_report,
    inject_noise,
    nearest_other,
    out_of_fold_ranks,
    passage_ranks,
    title_abstract_pairs,
)
from embedlab.data import load_scifact, load_stsb, subset_doc_ids
from embedlab.evaluate import (
    delta_mean,
    delta_spearman,
    ndcg_at_10_per_query,
    pair_cosine,
    spearman,
)
from embedlab.models import E5_SMALL, load_model, training_start
from embedlab.negatives import ndcg_per_query, train_contrastive
from embedlab.search import dense_search

PROFILE = embedlab.profile()
FAST = PROFILE.name == "fast"
# Budgets: the fast profile (2-core CPU, <= 3 min) uses seeded slices and short inputs;
# the full profile (GPU) uses everything at the models' own length limits.
EVAL_QUERIES, EVAL_DISTRACTORS = (150, 150) if FAST else (None, None)
EVAL_LEN = 128 if FAST else None  # E5's input length in section 6
STS_PAIRS = 300 if FAST else None
# E5 kept about 270M of its 1.3B harvested pairs: most web pairs were unusable, so most of
# ours are corrupted too. The level (70%) was picked on the dev claims when this notebook
# was written, never on the test claims; the Try it of section 5 re-runs it at 50%.
NOISE, HARD_SHARE, K = 0.7, 0.5, 2

scifact = load_scifact("test", corpus="full")  # all 5,183 abstracts: the source of pairs
test = load_scifact("test")  # evaluation: the profile's corpus (a subset in the fast one)
dev = load_scifact("train")  # SciFact *train* claims: nothing here trains on claims
sts = load_stsb("test")
embedlab.run_line(
    [E5_SMALL],
    {
        "SciFact abstracts": len(scifact.corpus),
        "SciFact test claims": len(test.queries),
        "SciFact train claims (dev)": len(dev.queries),
        "STS-B test pairs": len(sts),
    },
)
print(test.subset_note)
timings: dict[str, float] = {}

# %% [markdown]
# ## 1. The E5 recipe, in the paper's terms
#
# Wang et al. (2022), *Text Embeddings by Weakly-Supervised Contrastive Pre-training*,
# argue that the **data** is what makes a general-purpose embedding model. Their pipeline:
#
# | stage | what E5 does | scale in the paper | what this notebook does |
# |---|---|---|---|
# | harvest | **CCPairs**: (post, comment) from Reddit, (question, upvoted answer) from Stack Exchange, (entity + section title, passage) from Wikipedia, (title, abstract) and citation pairs from scientific papers (S2ORC), (title, passage) from Common Crawl and news | ~1.3B pairs | (title, abstract) pairs from the SciFact corpus |
# | filter | **consistency-based filtering**: train a model on the noisy pairs, rank each pair's passage against 1M random passages, keep the pair if it lands in the top *k* = 2 | ~270M pairs kept | the same rule: a model trained on the noisy pairs, the other pairs' passages as the pool |
# | pre-train | contrastive InfoNCE with **in-batch negatives**, shared encoder, `query: ` / `passage: ` prefixes, very large batches | 270M pairs | one epoch of MultipleNegativesRankingLoss from the static start |
# | fine-tune | labelled data with **mined hard negatives** (MS MARCO, NQ, NLI), and **knowledge distillation from a cross-encoder teacher** (the re-ranker's scores as soft labels) | labelled sets | not repeated here (notebooks 05 and 06 train on labelled pairs) |
#
# The multilingual E5 models we use below follow the same two stages, pre-training on
# about 1B multilingual pairs (Wang et al. 2024, *Multilingual E5 Text Embeddings*).
# The filter rests on an observation the paper cites: trained on noisy data, a network
# fits the clean, consistent pairs first, so its own ranking can tell them from the noise.
#
# ## 2. Weak pairs from SciFact: title -> abstract
#
# Every SciFact abstract comes with its paper's title: a free (query, passage) pair of
# exactly the S2ORC kind in CCPairs. **Leakage:** the test claims' relevant abstracts are
# in this corpus. If we trained on their title -> abstract pairs, the model would have
# seen every test positive as a training passage, and part of any gain would be
# memorisation. So we exclude all of them. The other abstracts (including the
# distractors of our evaluation slice) stay eligible; a model trained on them has seen
# those passages, but never as an answer to a claim.

# %%
# NBVAL_CHECK_OUTPUT
test_positives = {d for docs in scifact.qrels.values() for d in docs}
clean = title_abstract_pairs(scifact.corpus, exclude=test_positives)
print(f"corpus {len(scifact.corpus):,} abstracts | excluded test positives {len(test_positives)}")
print(f"weak pairs {len(clean):,}")
assert not test_positives & set(clean.query_ids), "a test positive leaked into training"
print("\nquery  :", clean.queries[0])
print("passage:", clean.passages[0][:160], "...")

# %% [markdown]
# ## 3. Inject known noise
#
# Web-scale pairs are noisy: a title scraped next to the wrong text, a comment that
# answers nothing. Real noise is unlabelled, so to *measure* a filter we make our own:
# `inject_noise` gives a seeded 70% of the pairs a wrong abstract (E5's filter discarded
# about four in five of its web pairs, so heavy noise is the realistic case). Random
# wrong abstracts would be too easy to spot (any model sees that a title about malaria
# does not belong to an abstract about bone density), so half of the corrupted pairs get
# their **nearest neighbour's** abstract instead: the abstract, among all the others,
# that the start model finds most similar to the true one. That is the noise a real
# scraper makes, on topic but wrong, and the noise a filter struggles with.

# %%
# NBVAL_CHECK_OUTPUT
start, start_name = training_start()
# just-trained models are encoded directly: nothing to reuse from the embedding cache
FRESH = dict(
    normalize_embeddings=True, convert_to_numpy=True, batch_size=256, show_progress_bar=False
)
nearest = nearest_other(start.encode(clean.passages, **FRESH))  # (N,) most similar other abstract
noisy = inject_noise(clean, fraction=NOISE, seed=0, nearest=nearest, hard_share=HARD_SHARE)
truth = noisy.noisy  # (N,) bool, known only because we made the noise
hard = np.array([noisy.passage_ids[i] == clean.passage_ids[nearest[i]] for i in range(len(noisy))])
print(f"pairs {len(noisy):,} | noisy {int(truth.sum()):,} ({truth.mean():.2f}), of which "
      f"{int(hard.sum()):,} nearest-neighbour abstracts")  # fmt: skip
i = int(np.flatnonzero(hard)[0])
print("\nquery        :", noisy.queries[i])
print("true abstract:", clean.passages[i][:110], "...")
print("noisy one    :", noisy.passages[i][:110], "...")

# %% [markdown]
# ## 4. Train on weak pairs: clean, then noisy
#
# E5 pre-trains with InfoNCE and in-batch negatives (notebook 06) on its weak pairs. We do
# the same at our scale: the static start of notebooks 05 and 06 (in the full profile, raw
# BERT), `MultipleNegativesRankingLoss`, batches of 64, one epoch. The learning rate is
# chosen on the SciFact **train** claims (dev): the weak pairs contain no claim at all, so
# any claim set is held out, and the test claims are read only once per model.


# %%
def fit(pairs, lr: float, epochs: float = 1.0):
    """A copy of the start trained on ``pairs`` (in-batch negatives, M = 64)."""
    model = copy.deepcopy(start)
    loss = MultipleNegativesRankingLoss(model, scale=20.0)  # tau = 0.05
    timings[f"train {len(pairs):,} pairs"] = train_contrastive(
        model, pairs.to_dataset(), loss, 64, epochs, lr
    )
    return model


candidates = {lr: fit(clean, lr) for lr in tqdm((0.01, 0.05) if FAST else (2e-5, 5e-5), desc="lr")}
dev_ndcg = {
    lr: round(float(100 * ndcg_per_query(m, dev).mean()), 2) for lr, m in candidates.items()
}
LR = max(dev_ndcg, key=dev_ndcg.get)
print(f"start on dev {100 * ndcg_per_query(start, dev).mean():.2f} | trained on clean pairs, "
      f"by lr: {dev_ndcg} -> lr {LR}")  # fmt: skip
per_claim = {
    "start": ndcg_per_query(start, test),
    "clean pairs": ndcg_per_query(candidates[LR], test),
}
noisy_model = fit(noisy, LR)
per_claim["noisy pairs"] = ndcg_per_query(noisy_model, test)
weak_gain = delta_mean(per_claim["start"], per_claim["clean pairs"])
print(
    f"SciFact test nDCG@10: { {k: round(float(100 * v.mean()), 2) for k, v in per_claim.items()} }"
)
print(
    f"clean weak pairs minus start: {weak_gain.delta:+.2f} [{weak_gain.low:+.2f}, {weak_gain.high:+.2f}]"
)
assert weak_gain.low > 0, "training on clean weak pairs should beat the start on test claims"

# %% [markdown]
# Titles and abstracts are not claims, yet training on them lifts SciFact claim retrieval
# over the start, with an interval above zero: the model learns which words of a short
# scientific text point to which abstract. Mostly wrong pairs teach less (the noisy row).
#
# ## 5. Consistency-based filtering, as E5 does it
#
# E5's filter is a model trained on the noisy pairs: for each pair $(q_i, p_i)$ it scores
# $q_i$ against every candidate passage and records the **rank** of its own passage
# (0 = best); the pair is kept if the rank is below $k$ (E5: $k = 2$). It works because a
# network fits the clean, consistent pairs before it memorises the noise. E5 ranks
# against 1M random passages; our pool is the pairs' own passages.
#
# A model that can memorise defeats this. Our static model has a free vector for every
# word piece, and one epoch is enough for it to learn many wrong pairs by heart: ranked by
# the model trained on *all* the noisy pairs, a wrong pair it was trained on still ranks
# its passage first. So we judge each pair with a model that never saw it: split the
# pairs in two folds, train one model per fold, and let each rank the other fold's pairs
# (out-of-fold scoring, as in confident learning, Northcutt et al. 2021). Both filters:


# %%
def own_ranks(model) -> np.ndarray:
    """(N,) rank of each pair's own passage among all N passages, scored by ``model``."""
    return passage_ranks(
        model.encode(noisy.queries, **FRESH), model.encode(noisy.passages, **FRESH)
    )


in_sample = own_ranks(noisy_model)  # the model was trained on every pair it judges
# two seeded folds: the model trained on one half ranks the pairs of the other half
ranks = out_of_fold_ranks(noisy, lambda half: fit(half, LR), n_folds=2, seed=0)


def sweep_of(r: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame(
        {k: filter_report(consistency_filter(r, k), truth) for k in (1, 2, 5, 10, 50)}
    ).T
    table.index.name = "k"
    return table


sweep = sweep_of(ranks)
report = sweep.loc[K]
print("in-sample filter (trained on every pair it judges), k=2:",
      {k: round(v, 3) for k, v in sweep_of(in_sample).loc[K].items()})  # fmt: skip
print("\nout-of-fold filter:\n" + sweep.round(3).to_string())
print("\nkept at k=2, by kind of pair:", {
    "clean": f"{consistency_filter(ranks, K)[~truth].mean():.2f}",
    "random noise": f"{consistency_filter(ranks, K)[truth & ~hard].mean():.2f}",
    "nearest-neighbour noise": f"{consistency_filter(ranks, K)[hard].mean():.2f}",
})  # fmt: skip

# %%
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
bins = np.arange(0, 22) - 0.5
for mask, name in (
    (~truth, "clean"),
    (truth & ~hard, "random noise"),
    (hard, "nearest-neighbour noise"),
):
    ax.hist(np.minimum(ranks[mask], 20), bins=bins, alpha=0.55, label=name)
ax.axvline(K - 0.5, color="k", ls="--", label=f"keep if rank < k = {K}")
ax.set(xlabel="rank of the pair's own passage (20 = 20 or worse)", ylabel="pairs",
       title="Where each pair's passage ranks for its query")  # fmt: skip
ax.legend(fontsize=8)
ax2.plot(sweep["recall"], sweep["precision"], "o-")
for k, row in sweep.iterrows():
    ax2.annotate(f"k={k}", (row["recall"], row["precision"]), fontsize=8)
ax2.set(xlabel="recall (noise removed)", ylabel="precision (removed that was noise)",
        title="The filter as a noise detector, over k")  # fmt: skip
fig.tight_layout()
plt.show()

# %% [markdown]
# The in-sample filter removes little noise (its recall, first line): it had learned the
# wrong pairs. Judged out of fold, random noise is easy: almost all of it ranks far from
# the top and is removed. The nearest-neighbour noise is the hard part (its own share
# above): an on-topic abstract often ranks near the top for a title it does not belong
# to, so some of it survives at any $k$ that keeps most clean pairs. Small $k$ removes more
# noise and more clean pairs: the precision-recall curve is the trade-off, and E5's
# $k = 2$ sits at its strict end.
#
# Now the same start, trained on the pairs the filter kept, for the **same number of
# steps** as the noisy run (fewer pairs, so more passes over them). Which $k$? We try E5's
# $k = 2$ and a looser $k = 10$ and let the dev claims decide:

# %%
filtered = {}
for k in tqdm((K, 10), desc="k"):
    keep = consistency_filter(ranks, k)
    filtered[k] = fit(noisy.select(keep), LR, epochs=len(noisy) / keep.sum())  # same steps
dev_by_k = {k: round(float(100 * ndcg_per_query(m, dev).mean()), 2) for k, m in filtered.items()}
K_DEV = max(dev_by_k, key=dev_by_k.get)
report = sweep.loc[K_DEV]
print(f"dev nDCG@10 by k: {dev_by_k} -> k = {K_DEV}")
per_claim["filtered pairs"] = ndcg_per_query(filtered[K_DEV], test)
filter_gain = delta_mean(per_claim["noisy pairs"], per_claim["filtered pairs"])
runs = pd.DataFrame({
    "pairs": [0, len(clean), len(noisy), int(report["kept"])],
    "noise": [np.nan, 0.0, truth.mean(), report["noise_after"]],
    "SciFact test nDCG@10": [100 * per_claim[k].mean() for k in per_claim],
}, index=list(per_claim)).round(3)  # fmt: skip
print(runs.to_string())
print(
    f"filtered minus noisy: {filter_gain.delta:+.2f} [{filter_gain.low:+.2f}, {filter_gain.high:+.2f}]"
)
print("verdict:", filter_gain.verdict())
assert report["recall"] > 0.5 and report["precision"] > report["noise_before"], "filter finds noise"
assert per_claim["filtered pairs"].mean() > per_claim["start"].mean()
assert filter_gain.low > 0, "training on the filtered pairs should beat training on all of them"

# %% [markdown]
# Read the interval, not the point estimate. Training on the pairs the filter kept (a
# minority of them: the pairs column) beats training on all of them, at the same number
# of steps, with an interval above zero: E5's claim holds at our scale. It does not
# close the gap to the clean run: the filter throws away clean pairs (and the information
# in them) and keeps part of the hard, on-topic noise (the noise column). The interval is
# wide because a few hundred test claims are few. E5's setting differs in the ways that
# matter: web noise on 1.3B pairs, a transformer that can fit far more of it, and a
# filter pool of 1M passages.
#
# The E5 part of this notebook (section 6) scores on a seeded slice of the test claims,
# cheaper to encode with a transformer:

# %%
# NBVAL_CHECK_OUTPUT
qids = test.query_ids
if EVAL_QUERIES is not None:
    qids = sorted(random.Random(0).sample(qids, EVAL_QUERIES))
qrels = {q: scifact.qrels[q] for q in qids}
docs = (
    scifact.doc_ids
    if EVAL_DISTRACTORS is None
    else subset_doc_ids(scifact.corpus, qrels, EVAL_DISTRACTORS)
)
doc_texts = [f"{scifact.corpus[d]['title']} {scifact.corpus[d]['text']}".strip() for d in docs]
claims = [scifact.queries[q] for q in qids]
print(f"E5 evaluation slice: {len(qids)} claims, {len(docs):,} abstracts")


def per_query_ndcg(model, q_prompt: str | None = None, d_prompt: str | None = None) -> np.ndarray:
    """nDCG@10 of every claim of the slice, in qids order (x 100)."""
    run = dense_search(
        encode(model, claims, prompt=q_prompt),
        encode(model, doc_texts, prompt=d_prompt),
        qids,
        docs,
        k=10,
    )
    return 100 * ndcg_at_10_per_query(run, qrels, qids)


# %% [markdown]
# **Try it**
# 1. Set `HARD_SHARE = 0` (random noise only) and re-run sections 3-5. How do the
#    filter's precision and recall move, and how large is the filtered-vs-noisy gap now?
# 2. Filter with `K = 10`: the sweep table predicts more noise left in; does the trained
#    model notice?
# 3. Judge the pairs with a pretrained encoder instead (`load_model(MINILM)` from
#    `embedlab.models`, trained on S2ORC title-abstract pairs among a billion others):
#    does it spot more of the nearest-neighbour noise than the out-of-fold models?
# 4. Set `NOISE = 0.5` and re-run sections 3-5. How much does the noisy run lose to the
#    clean one now, and does the filtered-minus-noisy interval still exclude 0?
#
# ## 6. E5's prefixes: `query: ` and `passage: `
#
# E5 shares one encoder between queries and passages and breaks the symmetry with text
# prefixes it saw in every training pair. sentence-transformers stores them as the
# model's `prompts`; `encode(..., prompt_name="query")` simply prepends the string. The
# cell below shows exactly what the tokenizer receives (the ids the model runs on).

# %%
# NBVAL_CHECK_OUTPUT
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
e5 = load_model(E5_SMALL, max_seq_length=EVAL_LEN)
for name, text in E5_PROMPTS.items():  # the offline mirror configures them; make sure online too
    e5.prompts.setdefault(name, text)
    assert e5.prompts[name] == text
e5.default_prompt_name = None  # so "no prompt" really means no prefix
print("prompts:", {k: e5.prompts[k] for k in E5_PROMPTS})
claim = claims[0]
for name in E5_PROMPTS:
    ids = e5.preprocess([claim], prompt=e5.prompts[name])["input_ids"][0]
    print(f"\n{name!r} -> {e5.prompts[name] + claim!r}")
    print(e5.tokenizer.convert_ids_to_tokens(ids.tolist())[:10], "...")
by_name = e5.encode([claim], prompt_name="query")
by_hand = e5.encode(["query: " + claim])
assert np.allclose(by_name, by_hand, atol=1e-5), "prompt_name must equal prepending the string"

# %% [markdown]
# We score four variants on the SciFact evaluation slice above (claims are queries,
# abstracts are passages) and on STS-B test (first sentence, second sentence):
#
# | variant | SciFact claim / abstract | STS-B sentence 1 / sentence 2 |
# |---|---|---|
# | as trained | `query: ` / `passage: ` | `query: ` / `passage: ` |
# | no prefixes | none / none | none / none |
# | swapped | `passage: ` / `query: ` | `passage: ` / `query: ` |
# | `query: ` on both sides | `query: ` / `query: ` | `query: ` / `query: ` (what the model card advises for symmetric tasks) |

# %%
# NBVAL_CHECK_OUTPUT
sts_rows = (
    list(range(len(sts)))
    if STS_PAIRS is None
    else sorted(random.Random(0).sample(range(len(sts)), STS_PAIRS))
)
sts_sub = sts.select(sts_rows)


def clip(texts: list[str], n: int) -> list[str]:
    """Each text cut to its first ``n`` word pieces (no special tokens), decoded back."""
    ids = e5.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=n)["input_ids"]
    return e5.tokenizer.batch_decode(ids)


# Same token budget for every variant: each text is cut to the same content tokens first,
# leaving room for the longest prefix and [CLS]/[SEP] inside max_seq_length.
prefix_room = max(
    len(e5.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in E5_PROMPTS.values()
)
CONTENT = e5.max_seq_length - prefix_room - 2
claims, doc_texts = clip(claims, CONTENT), clip(doc_texts, CONTENT)
s1, s2 = clip(list(sts_sub["sentence1"]), CONTENT), clip(list(sts_sub["sentence2"]), CONTENT)
gold = np.array(sts_sub["score"])
VARIANTS = {
    "as trained (query: / passage:)": ("query", "passage"),
    "no prefixes": (None, None),
    "swapped (passage: / query:)": ("passage", "query"),
    "query: on both sides": ("query", "query"),
}
print(
    f"E5 at max_seq_length {e5.max_seq_length}: every text cut to {CONTENT} content tokens, "
    f"so each variant reads the same words; SciFact slice {len(claims)} claims x "
    f"{len(docs):,} abstracts; STS-B {len(sts_sub):,} of {len(sts):,} test pairs (seeded)"
)

# %%
t0 = time.perf_counter()
sci_per_query, sts_pred = {}, {}
for variant, (first, second) in VARIANTS.items():
    p1 = e5.prompts[first] if first else None
    p2 = e5.prompts[second] if second else None
    sci_per_query[variant] = per_query_ndcg(e5, p1, p2) / 100  # (claims,) in [0, 1]
    sts_pred[variant] = pair_cosine(encode(e5, s1, prompt=p1), encode(e5, s2, prompt=p2))
timings["E5 prefix ablation"] = time.perf_counter() - t0
AS_TRAINED = "as trained (query: / passage:)"


def vs_trained(d) -> str:
    return f"{d.delta:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"


retrieval = pd.DataFrame({
    "SciFact nDCG@10": {v: 100 * x.mean() for v, x in sci_per_query.items()},
    "minus as trained [95% CI]": {v: vs_trained(delta_mean(sci_per_query[AS_TRAINED], x))
                                  for v, x in sci_per_query.items()},
})  # fmt: skip
similarity = pd.DataFrame({
    "STS-B Spearman": {v: 100 * spearman(x, gold) for v, x in sts_pred.items()},
    "minus as trained [95% CI]": {v: vs_trained(delta_spearman(sts_pred[AS_TRAINED], x, gold))
                                  for v, x in sts_pred.items()},
})  # fmt: skip
print("Retrieval (asymmetric):\n" + retrieval.round(2).to_string())
print("\nSimilarity (symmetric):\n" + similarity.round(2).to_string())
prefixes = pd.concat([retrieval.iloc[:, :1], similarity.iloc[:, :1]], axis=1)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
for ax, (column, task) in zip(
    axes, [("SciFact nDCG@10", "retrieval"), ("STS-B Spearman", "similarity")], strict=True
):
    values = prefixes[column]
    ax.barh(values.index, values, color="#4C72B0")
    ax.set(xlim=(values.min() - 5, values.max() + 2), xlabel=f"{column} x 100", title=task)
axes[0].set_ylabel("prefixes (first side / second side)")
axes[0].invert_yaxis()
fig.suptitle("multilingual-e5-small: which prefixes, where (same content tokens everywhere)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read each panel down the rows. On **STS-B**, the two variants that treat both
# sentences alike (`query: ` on both sides, or no prefix at all) score highest, and the
# two that tag the sentences differently (as trained, swapped) lose points. On
# **SciFact**, swapping the prefixes or tagging the abstracts `query: ` scores lower,
# while dropping both prefixes changes little. The table gives each variant's per-claim
# difference from "as trained" with its 95% paired-bootstrap interval: a retrieval gap
# whose interval spans zero is not established on this slice of claims; the STS-B gaps
# are the clearer result.
#
# Why: the prefixes are part of every training input, so the encoder learned two
# slightly different "modes". For STS the two sentences play the *same* role: giving them
# different prefixes embeds the same sentence differently depending on its side, which
# adds noise to every cosine, while the same prefix (or none) keeps the comparison
# symmetric; `query: ` fits because STS sentences are short, like queries. For retrieval,
# a swapped prefix gives each side the other's role. Without any prefix the model still
# sees a short claim against a long abstract, so much of the asymmetry survives in the
# text itself; the model card nonetheless warns that omitting the prefixes degrades
# performance, and on this run the gap is the size printed above, not more.

# %%
sci, stsb = prefixes["SciFact nDCG@10"], prefixes["STS-B Spearman"]
assert sci[AS_TRAINED] > sci["swapped (passage: / query:)"]
assert sci[AS_TRAINED] > sci["query: on both sides"]
assert abs(sci[AS_TRAINED] - sci["no prefixes"]) < 3.0
symmetric = min(stsb["query: on both sides"], stsb["no prefixes"])
assert symmetric > max(stsb[AS_TRAINED], stsb["swapped (passage: / query:)"])

# %% [markdown]
# ### Against the published MTEB numbers
#
# MTEB's results repository (github.com/embeddings-benchmark/results, folder
# `results/intfloat__multilingual-e5-small/fd1525a9fd15316a2d503bf26ab031a61d056e98/`)
# reports SciFact nDCG@10 **67.59** (`SciFact.json`, full 5,183-abstract corpus, mteb
# 1.20.0) and STSBenchmark cosine Spearman **83.59** (`STSBenchmark.json`, full test
# set, mteb 1.36.26), both evaluated with E5's prefixes. Our fast-profile numbers use a
# slice of each and 128-token inputs, so they are not comparable with these; in the full
# profile they are, and the check below holds them to it. Offline the weights are a dequantized 4-bit build, which can move
# scores by a few tenths of a point against the full-precision weights MTEB evaluated.

# %%
# NBVAL_IGNORE_OUTPUT
published = {"SciFact nDCG@10": 67.59, "STS-B Spearman": 83.59}
measured = {
    "SciFact nDCG@10": sci[AS_TRAINED],
    "STS-B Spearman": stsb["query: on both sides"],
}
print(pd.DataFrame({"measured": measured, "published (MTEB)": published}).round(2).to_string())
if not FAST:
    assert abs(measured["SciFact nDCG@10"] - 67.59) < 2.0
    assert abs(measured["STS-B Spearman"] - 83.59) < 1.0

# %% [markdown]
# **Try it**
# 5. Add a variant with `passage: ` on both sides of STS-B. Is "same prefix on both
#    sides" the whole story, or does *which* prefix matter?
#
# ## Summary

# %%
# NBVAL_IGNORE_OUTPUT
e5_kept = 270 / 1300  # paper: ~270M of ~1.3B pairs survive the filter
print(runs.to_string())
print(f"filter at k={K_DEV}: precision {report['precision']:.3f}, recall {report['recall']:.3f}, "
      f"kept {report['kept'] / len(noisy):.2f} of the pairs (E5: {e5_kept:.2f} of real web pairs)")  # fmt: skip
print(prefixes.round(2).to_string())
print(
    f"\n{PROFILE.name} profile timings: " + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items())
)
train_setting = f"{start_name}, {len(clean):,} title-abstract pairs, 1 epoch, M=64, lr {LR} (dev)"
e5_setting = (
    "full test sets"
    if not FAST
    else f"fast slices ({len(qids)} claims, {len(sts_sub)} STS-B pairs), {EVAL_LEN} tokens"
)
e5_verdict = "not comparable" if FAST else None
embedlab.report_claims(
    "07",
    [
        embedlab.comparison(
            "weak-pairs-gain", "SciFact test nDCG@10, trained on clean weak pairs minus start",
            "E5 (Wang et al. 2022): weakly supervised pre-training", weak_gain, train_setting,
        ),
        embedlab.comparison(
            "filtering-gain", "SciFact test nDCG@10, trained on filtered minus noisy pairs",
            "E5 (Wang et al. 2022): consistency-based filtering", filter_gain,
            train_setting + f", {NOISE:.0%} noise (half nearest-neighbour), out-of-fold filter, k={K_DEV} (dev)",
        ),
        embedlab.claim(
            "filter-precision", f"consistency filter (out of fold, k={K_DEV}): precision on injected noise",
            "E5 (Wang et al. 2022): consistency-based filtering", 100 * report["precision"],
            f"filter = out-of-fold models trained on the noisy pairs; recall {100 * report['recall']:.1f}",
            "not comparable",
        ),
        embedlab.claim(
            "e5-small-scifact", "multilingual-e5-small SciFact nDCG@10 (query:/passage:)", "MTEB",
            measured["SciFact nDCG@10"], e5_setting,
            e5_verdict or ("reproduced" if abs(measured["SciFact nDCG@10"] - 67.59) < 2 else "not reproduced"),
            published=67.59,
        ),
        embedlab.claim(
            "e5-small-stsb", "multilingual-e5-small STS-B Spearman (query: both sides)", "MTEB",
            measured["STS-B Spearman"], e5_setting,
            e5_verdict or ("reproduced" if abs(measured["STS-B Spearman"] - 83.59) < 1 else "not reproduced"),
            published=83.59,
        ),
    ],
)  # fmt: skip

# %% [markdown]
# - Title -> abstract pairs are free weak supervision; excluding the test positives keeps
#   the evaluation honest.
# - Trained on clean title -> abstract pairs alone, the static start retrieves SciFact
#   claims better than before (interval above zero): weak pairs teach.
# - With 70% of the pairs corrupted, half of those with a nearest-neighbour abstract, the
#   consistency filter (out-of-fold models trained on the noisy pairs; an in-sample model
#   memorises the noise) removes most of the random noise and part of the hard noise.
#   Training on what it kept beats training on everything, at the same number of steps
#   (the `filtering-gain` row, interval above zero), though it stays below the clean run.
# - E5's prefixes: for symmetric similarity give both sides the same one (`query: `, as
#   the model card advises); different prefixes on the two sentences cost points. For
#   retrieval use them as trained: swapped prefixes scored lower, while dropping both
#   changed little on this run (see the paired standard errors).
# - What is reduced here: pairs from one source (not CCPairs' mix), a pool of a few
#   thousand passages (not 1M), a static model and one epoch at batch 64 (not a
#   transformer and E5's very large batches), no hard-negative or distillation
#   fine-tuning stage; E5 is evaluated on seeded slices at 128 tokens in the fast profile.
#
# ## Exercises
#
# **Exercise 1.** Recompute the rank of pair 0's own passage with plain NumPy: score
# its query against every passage and count the strictly higher scores. Check it
# against the in-sample `passage_ranks` of section 5 for the first 20 pairs.


# %%
def own_rank(q: np.ndarray, P: np.ndarray, i: int) -> int:
    """Rank of P[i] for query q (D,) among the rows of P (N, D): strictly higher scores."""
    s = P @ q
    return int((s > s[i]).sum())


q_emb = noisy_model.encode(noisy.queries[:20], **FRESH)  # (20, D)
p_emb = noisy_model.encode(noisy.passages, **FRESH)  # (N, D)
mine = [own_rank(q_emb[i], p_emb, i) for i in range(20)]
print(mine)
# equal up to float rounding of near-ties (a duplicated nearest-neighbour passage)
assert all(abs(a - b) <= 1 for a, b in zip(mine, in_sample[:20], strict=True))

# %% [markdown]
# **Exercise 2.** E5 kept about 270M of 1.3B pairs. Suppose our filter behaved on web
# data as it did here (same recall of noise, same fraction of clean pairs kept). What
# noise fraction $f$ would make it keep the same share of pairs? The kept share is
# $(1-f)\,c + f\,(1-r)$ with $c$ = clean pairs kept and $r$ = recall; solve for $f$.

# %%
c, r = report["clean_kept"], report["recall"]
f = (c - e5_kept) / (c - (1 - r))
print(f"implied noise fraction of the raw pairs: {f:.2f}")
assert 0 < f < 1
assert abs((1 - f) * c + f * (1 - r) - e5_kept) < 1e-9
