# %% [markdown]
# **You will learn**
# - E5's recipe in the paper's own terms: weak pairs harvested at scale (CCPairs),
#   consistency-based filtering, contrastive pre-training with in-batch negatives, then
#   fine-tuning with hard negatives;
# - how to build weak (title -> abstract) pairs from a corpus, inject a known fraction of
#   noise, and measure the precision and recall of a consistency filter against it;
# - whether filtering pays: the same start fine-tuned on filtered vs unfiltered pairs,
#   evaluated on SciFact claims, a query distribution the titles never showed it;
# - what E5's `query: ` / `passage: ` prefixes do, measured on retrieval (SciFact) and on
#   a symmetric task (STS-B), through sentence-transformers' `prompts` mechanism.
#
# *Offline note:* without the Hugging Face Hub, `intfloat/multilingual-e5-small` is a
# **dequantized 4-bit build** (the header line below marks it). Its scores sit close to,
# not exactly on, the published full-precision ones; section 5 compares them.

# %%
import random
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

import embedlab
from embedlab.cache import encode
from embedlab.curation import (
    consistency_filter,
    filter_report,
    inject_noise,
    passage_ranks,
    title_abstract_pairs,
)
from embedlab.data import load_scifact, load_stsb, subset_doc_ids
from embedlab.evaluate import retrieval_per_query, sts_spearman
from embedlab.models import E5_SMALL, MINILM, load_model
from embedlab.search import dense_search
from embedlab.train import scaled_steps, train

PROFILE = embedlab.profile()
FAST = PROFILE.name == "fast"
# Budgets: the fast profile (2-core CPU, <= 3 min) uses seeded slices and short inputs;
# the full profile (GPU) uses everything at the models' own length limits.
EVAL_QUERIES, EVAL_DISTRACTORS = (150, 150) if FAST else (None, None)
N_PAIRS = 512 if FAST else None  # weak pairs sampled from the eligible abstracts
TRAIN_LEN, EVAL_LEN = (64, 128) if FAST else (256, None)
STS_PAIRS = 300 if FAST else None
NOISE, K = 0.5, 2

scifact = load_scifact("test", corpus="full")  # all 5,183 abstracts: the source of pairs
sts = load_stsb("test")
embedlab.run_line(
    [MINILM, E5_SMALL],
    {
        "SciFact abstracts": len(scifact.corpus),
        "SciFact test claims": len(scifact.queries),
        "STS-B test pairs": len(sts),
    },
)
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
# | filter | **consistency-based filtering**: train a model on the noisy pairs, rank each pair's passage against 1M random passages, keep the pair if it lands in the top *k* = 2 | ~270M pairs kept | the same rule, with a ready-made encoder and the other pairs' passages as the pool |
# | pre-train | contrastive InfoNCE with **in-batch negatives**, shared encoder, `query: ` / `passage: ` prefixes, very large batches | 270M pairs | a few dozen steps of MultipleNegativesRankingLoss |
# | fine-tune | labelled data with **mined hard negatives**: MS MARCO, NQ, NLI | labelled sets | not repeated here (notebooks 05 and 06 train on labelled pairs) |
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
eligible = title_abstract_pairs(scifact.corpus, exclude=test_positives)
chosen = (
    eligible.query_ids if N_PAIRS is None else random.Random(0).sample(eligible.query_ids, N_PAIRS)
)
clean = title_abstract_pairs(scifact.corpus, sorted(chosen))
print(f"corpus {len(scifact.corpus):,} abstracts | excluded test positives {len(test_positives)}")
print(f"eligible pairs {len(eligible):,} | used {len(clean):,}")
assert not test_positives & set(clean.query_ids), "a test positive leaked into training"
print("\nquery  :", clean.queries[0])
print("passage:", clean.passages[0][:160], "...")

# %% [markdown]
# ## 3. Inject known noise
#
# Web-scale pairs are noisy: a title scraped next to the wrong text, a comment that
# answers nothing. Real noise is unlabelled, so to *measure* a filter we make our own:
# `inject_noise` gives a seeded fraction of the pairs another pair's abstract (the chosen
# pairs' abstracts are rotated along one cycle, so every chosen pair is wrong and no
# abstract is duplicated). We use a high noise level, half the pairs, so that its effect
# on training is large enough to measure in a few dozen steps.

# %%
# NBVAL_CHECK_OUTPUT
noisy = inject_noise(clean, fraction=NOISE, seed=0)
truth = noisy.noisy  # (N,) bool, known only because we made the noise
print(f"pairs {len(noisy)} | noisy {int(truth.sum())} | measured noise fraction {truth.mean():.3f}")
i = int(np.flatnonzero(truth)[0])
print("\nquery  :", noisy.queries[i])
print("passage:", noisy.passages[i][:160], "...")

# %% [markdown]
# ## 4. Consistency-based filtering
#
# For each pair $(q_i, p_i)$ we embed both sides, score $q_i$ against every candidate
# passage and record the **rank** of its own passage (0 = best). E5 ranks against 1M
# random passages; our pool is the $N$ passages of the pairs themselves. Then we keep
# the pair if the rank is below $k = 2$. E5's filter model was trained on the noisy pairs
# first; we use `all-MiniLM-L6-v2` as it is, an encoder already trained on about 1B
# pairs (S2ORC title-abstract pairs among them): the role is the same, a model whose
# notion of "belongs together" comes from data rather than from our labels.

# %%
start = time.perf_counter()
filter_model = load_model(MINILM, max_seq_length=EVAL_LEN)
q_emb = encode(filter_model, noisy.queries)  # (N, D)
p_emb = encode(filter_model, noisy.passages)  # (N, D)
ranks = passage_ranks(q_emb, p_emb)  # (N,) rank of each pair's own passage
keep = consistency_filter(ranks, k=K)
timings["filter: encode + rank"] = time.perf_counter() - start

sweep = pd.DataFrame(
    {k: filter_report(consistency_filter(ranks, k), truth) for k in (1, 2, 5, 10)}
).T
sweep.index.name = "k"
print(sweep.round(3).to_string())
report = sweep.loc[K]

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
bins = np.arange(0, 22) - 0.5
for mask, label in ((~truth, "clean pairs"), (truth, "noisy pairs")):
    ax.hist(np.minimum(ranks[mask], 20), bins=bins, alpha=0.6, label=label)
ax.axvline(K - 0.5, color="k", ls="--", label=f"keep if rank < k = {K}")
ax.set(
    xlabel="rank of the pair's own passage (20 = 20 or worse)",
    ylabel="pairs",
    title="Consistency filter: where each pair's passage ranks for its query",
)
ax.legend()
plt.show()

# %% [markdown]
# Clean pairs pile up at rank 0 while most noisy pairs rank 20th or worse, so a cut at
# $k = 2$ separates them almost perfectly; the table above gives the exact precision
# (removed pairs that were noise) and recall (noise that was removed) for each $k$.

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"k={K}: precision {report['precision']:.3f}, recall {report['recall']:.3f}, "
    f"clean pairs kept {report['clean_kept']:.3f}, noise left {report['noise_after']:.3f}"
)
assert report["precision"] > 0.85 and report["recall"] > 0.85
assert report["noise_after"] < NOISE / 3
assert np.median(ranks[~truth]) == 0 and (ranks[truth] >= 20).mean() > 0.5

# %% [markdown]
# ## 5. Does filtering pay? Fine-tune on filtered vs unfiltered pairs
#
# Same start (`all-MiniLM-L6-v2`), same loss (MultipleNegativesRankingLoss: InfoNCE
# with in-batch negatives, E5's pre-training objective), same number of steps, batch
# size, learning rate and seed; only the data differ. We evaluate on SciFact **test
# claims**, which read nothing like paper titles ("X causes Y" statements), so a gain
# has to transfer. The fast profile evaluates on a seeded slice (every relevant abstract
# of the sampled claims plus seeded distractors) at 128 tokens; retrieval scores on a
# slice are inflated relative to the full corpus and are comparable only with each other.

# %%
# NBVAL_CHECK_OUTPUT
qids = scifact.query_ids
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
seen = len(set(docs) & set(clean.query_ids))
print(
    f"evaluation: {len(qids)} claims, {len(docs):,} abstracts "
    f"({len(docs) - seen:,} never seen in training, {seen} seen as training passages)"
)


def per_query_ndcg(model, q_prompt: str | None = None, d_prompt: str | None = None) -> np.ndarray:
    """nDCG@10 of every evaluation claim, in qids order (x 100)."""
    run = dense_search(
        encode(model, claims, prompt=q_prompt),
        encode(model, doc_texts, prompt=d_prompt),
        qids,
        docs,
        k=10,
    )
    per_query = retrieval_per_query(run, qrels, k=10)
    return 100 * np.array([per_query[q]["ndcg@10"] for q in qids])


# %%
steps, batch_size, lr = scaled_steps(160), 32, 1e-4
train_sets = {"unfiltered (noisy) pairs": noisy, f"filtered pairs (k={K})": noisy.select(keep)}
ndcg = {"start: all-MiniLM-L6-v2": per_query_ndcg(filter_model)}
for name, pairs in train_sets.items():
    model = load_model(MINILM, max_seq_length=TRAIN_LEN)
    result = train(
        model,
        pairs.to_dataset(),
        MultipleNegativesRankingLoss(model),
        steps=steps,
        batch_size=batch_size,
        learning_rate=lr,
        seed=0,
    )
    timings[f"train on {name}"] = result.seconds
    model.max_seq_length = filter_model.max_seq_length  # evaluate at the same length as the start
    ndcg[f"trained on {name}"] = per_query_ndcg(model)
    print(
        f"{name}: {len(pairs)} pairs, noise {pairs.noisy.mean():.2f}, {steps} steps x {batch_size}"
    )

# %%
# NBVAL_IGNORE_OUTPUT
train_table = pd.DataFrame({"nDCG@10": {k: v.mean() for k, v in ndcg.items()}})
print(train_table.round(2).to_string())
unf, fil = ndcg["trained on unfiltered (noisy) pairs"], ndcg[f"trained on filtered pairs (k={K})"]
diff = fil - unf  # paired by claim
se = diff.std(ddof=1) / np.sqrt(len(diff))
print(
    f"\nfiltered - unfiltered: {diff.mean():+.2f} nDCG@10 points, paired standard error {se:.2f} "
    f"({diff.mean() / se:.1f} standard errors)"
)

# %% [markdown]
# The gap between the two fine-tuned models is measured per claim and paired, so its
# standard error is the right yardstick: a gap of more than about two standard errors
# is unlikely to be noise in the choice of claims. Training on half-wrong pairs pulls
# titles towards abstracts they have nothing to do with, and the damage transfers to
# claims; training on the filtered pairs avoids most of it. Note what this experiment
# does *not* show: neither run needs to beat the start (compare both with its row),
# because MiniLM was already trained on clean title-abstract pairs, and a few dozen
# steps on our small set mostly test how much harm bad data does.

# %%
assert diff.mean() > 2 * se, "filtered training should beat unfiltered by > 2 paired SE"
assert fil.mean() > unf.mean()

# %% [markdown]
# **Try it**
# 1. Set `NOISE = 0.2` (and then `0.8`) and re-run sections 3-5. How do the filter's
#    precision and recall move, and how large is the filtered-vs-unfiltered gap now?
# 2. Filter with `K = 10`: the sweep table predicts more noise left in; does the
#    fine-tuned model notice?
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
s1, s2, gold = list(sts_sub["sentence1"]), list(sts_sub["sentence2"]), np.array(sts_sub["score"])
VARIANTS = {
    "as trained (query: / passage:)": ("query", "passage"),
    "no prefixes": (None, None),
    "swapped (passage: / query:)": ("passage", "query"),
    "query: on both sides": ("query", "query"),
}
print(
    f"E5 at max_seq_length {e5.max_seq_length}; SciFact slice {len(claims)} claims x "
    f"{len(docs):,} abstracts; STS-B {len(sts_sub):,} of {len(sts):,} test pairs (seeded)"
)

# %%
start = time.perf_counter()
prefix_rows, sci_per_query = {}, {}
for variant, (first, second) in VARIANTS.items():
    p1 = e5.prompts[first] if first else None
    p2 = e5.prompts[second] if second else None
    sci_per_query[variant] = per_query_ndcg(e5, p1, p2)  # (claims,)
    prefix_rows[variant] = {
        "SciFact nDCG@10": sci_per_query[variant].mean(),
        "STS-B Spearman": 100
        * sts_spearman(encode(e5, s1, prompt=p1), encode(e5, s2, prompt=p2), gold),
    }
timings["E5 prefix ablation"] = time.perf_counter() - start
prefixes = pd.DataFrame(prefix_rows).T
AS_TRAINED = "as trained (query: / passage:)"
delta = {v: x - sci_per_query[AS_TRAINED] for v, x in sci_per_query.items()}
prefixes["SciFact vs as trained"] = [d.mean() for d in delta.values()]
prefixes["(paired SE)"] = [d.std(ddof=1) / np.sqrt(len(d)) for d in delta.values()]
print(prefixes.round(2).to_string())

# %%
scores = prefixes[["SciFact nDCG@10", "STS-B Spearman"]]
ax = scores.plot.barh(figsize=(7, 3.2), xlim=(scores.min().min() - 5, scores.max().max() + 2))
ax.set(xlabel="score x 100", title="multilingual-e5-small: which prefixes, where")
ax.invert_yaxis()
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
plt.show()

# %% [markdown]
# Read each colour down the rows. On **STS-B**, the two variants that treat both
# sentences alike (`query: ` on both sides, or no prefix at all) score highest, and the
# two that tag the sentences differently (as trained, swapped) lose points. On
# **SciFact**, swapping the prefixes or tagging the abstracts `query: ` scores lower,
# while dropping both prefixes changes little. The table gives each variant's per-claim
# difference from "as trained" with its paired standard error: on the fast profile's
# slice of claims these retrieval gaps are within about two standard errors, so read
# them as suggestive; the STS-B gaps are the clearer result.
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
# 3. Add a variant with `passage: ` on both sides of STS-B. Is "same prefix on both
#    sides" the whole story, or does *which* prefix matter?
#
# ## Summary

# %%
# NBVAL_IGNORE_OUTPUT
e5_kept = 270 / 1300  # paper: ~270M of ~1.3B pairs survive the filter
summary = pd.DataFrame(
    [
        ("filter precision (k=2)", report["precision"], "", "removed pairs that were noise"),
        ("filter recall (k=2)", report["recall"], "", "noise that was removed"),
        (
            "fraction of pairs kept",
            report["kept"] / len(noisy),
            e5_kept,
            "E5: real web noise, 1M-passage pool",
        ),
        *[
            (f"SciFact nDCG@10, {k}", v.mean(), "", "eval slice" if FAST else "full corpus")
            for k, v in ndcg.items()
        ],
        (
            "E5 SciFact nDCG@10, query:/passage:",
            measured["SciFact nDCG@10"],
            67.59,
            "MTEB (full corpus)",
        ),
        (
            "E5 STS-B Spearman, query: both",
            measured["STS-B Spearman"],
            83.59,
            "MTEB (full test set)",
        ),
    ],
    columns=["quantity", "measured", "published", "note"],
).set_index("quantity")
summary["measured"] = summary["measured"].map(lambda x: f"{x:.3f}" if x <= 1 else f"{x:.2f}")
summary["published"] = summary["published"].map(
    lambda x: x if x == "" else (f"{x:.3f}" if x <= 1 else f"{x:.2f}")
)
print(summary.to_string())
print(
    f"\n{PROFILE.name} profile timings: " + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items())
)
e5_setting = "full test sets, 512 tokens" if not FAST else "fast slices, 128 tokens"
embedlab.report_claims(
    "07",
    [
        {
            "claim": "consistency filter: precision on injected noise (k=2)",
            "source": "E5 paper (consistency-based filtering)",
            "published": None,
            "measured": 100 * report["precision"],
            "setting": f"{len(noisy):,} title-abstract pairs, {noisy.noisy.mean():.0%} corrupted",
        },
        {
            "claim": "SciFact nDCG@10, trained on filtered minus unfiltered pairs",
            "source": "E5 paper (data curation)",
            "published": None,
            "measured": fil.mean() - unf.mean(),
            "setting": f"MiniLM start, {steps} steps x {batch_size}",
        },
        {
            "claim": "multilingual-e5-small SciFact nDCG@10 (query:/passage:)",
            "source": "MTEB",
            "published": 67.59,
            "measured": measured["SciFact nDCG@10"],
            "setting": e5_setting,
        },
        {
            "claim": "multilingual-e5-small STS-B Spearman (query: both sides)",
            "source": "MTEB",
            "published": 83.59,
            "measured": measured["STS-B Spearman"],
            "setting": e5_setting,
        },
    ],
)

# %% [markdown]
# - Title -> abstract pairs are free weak supervision; excluding the test positives keeps
#   the evaluation honest.
# - With half the pairs corrupted, the consistency filter (top-*k* = 2 of the pair pool,
#   scored by an off-the-shelf encoder) removes nearly all the noise and keeps nearly all
#   the clean pairs: see its precision and recall above.
# - The same start fine-tuned on the filtered pairs beats the one fine-tuned on the
#   unfiltered pairs on SciFact claims, by more than two paired standard errors here.
# - E5's prefixes: for symmetric similarity give both sides the same one (`query: `, as
#   the model card advises); different prefixes on the two sentences cost points. For
#   retrieval use them as trained: swapped prefixes scored lower, while dropping both
#   changed little on this run (see the paired standard errors).
# - What is reduced here: pairs from one source (not CCPairs' mix), a pool of a few
#   hundred passages (not 1M), a ready-made filter model (not one trained on the noisy
#   pairs), a few dozen training steps at batch 32 (not E5's very large batches), no
#   hard-negative fine-tuning stage; the fast profile evaluates on seeded slices at
#   128 tokens.
#
# ## Exercises
#
# **Exercise 1.** Recompute the rank of pair 0's own passage with plain NumPy: score
# its query against every passage and count the strictly higher scores. Check it
# against `passage_ranks` for the first 20 pairs.


# %%
def own_rank(q: np.ndarray, P: np.ndarray, i: int) -> int:
    """Rank of P[i] for query q (D,) among the rows of P (N, D): strictly higher scores."""
    s = P @ q
    return int((s > s[i]).sum())


mine = [own_rank(q_emb[i], p_emb, i) for i in range(20)]
print(mine)
assert mine == ranks[:20].tolist()

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
