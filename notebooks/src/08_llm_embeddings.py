# %% [markdown]
# **You will learn**
# - why a decoder-only LLM is pooled at its *last* token (E5-mistral appends an EOS token),
#   and how mean, last-token and last-token + EOS pooling compare on a raw SmolLM2-135M;
# - the padding pitfall of last-token pooling (right padding reads a pad token), and two
#   fixes: left padding, or gathering at the true lengths;
# - E5-mistral's instruction template `Instruct: {task}\nQuery: {text}`, on the query side;
# - the paper's main idea, synthetic data: an instruct model brainstorms retrieval tasks and
#   writes (query, positive, hard negative) examples as JSON, which we parse and judge;
# - contrastive LoRA fine-tuning of the decoder (InfoNCE, tau = 0.02, in-batch negatives),
#   measured before and after on STS-B and SciFact, beside Wang et al. (2024).

# %%
import random
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

import embedlab
from embedlab.config import is_offline
from embedlab.data import load_scifact, load_snli, load_stsb
from embedlab.evaluate import delta_spearman, ndcg_at_10, pair_cosine, sts_spearman
from embedlab.llm import (
    DecoderEmbedder,
    check_pooled_is_eos,
    format_instruction,
    last_token_pool,
    mean_pool,
    parse_examples,
    parse_string_list,
)
from embedlab.losses import info_nce
from embedlab.models import MINILM, SMOLLM, load_model
from embedlab.offline import require_model
from embedlab.search import dense_search

PROFILE = embedlab.profile()
FAST = PROFILE.name == "fast"
rng = random.Random(0)

# STS-B test: a seeded subset in the fast profile, all pairs in the full one.
sts = load_stsb("test")
if FAST:
    sts = sts.shuffle(seed=0).select(range(150))
s1, s2, gold = list(sts["sentence1"]), list(sts["sentence2"]), np.array(sts["score"])

# SciFact test: fast = 30 seeded queries, their relevant abstracts + 30 distractors.
beir = load_scifact("test")
qids = sorted(beir.qrels)
if FAST:
    qids = sorted(rng.sample(qids, 30))
relevant = sorted({d for q in qids for d in beir.qrels[q]})
others = [d for d in beir.doc_ids if d not in set(relevant)]
doc_ids = sorted(relevant + (rng.sample(others, 30) if FAST else others))
doc_texts = [f"{beir.corpus[d]['title']} {beir.corpus[d]['text']}".strip() for d in doc_ids]
qrels = {q: beir.qrels[q] for q in qids}
DOC_LEN = 96 if FAST else 512  # tokens per abstract, EOS included

embedlab.run_line(
    [SMOLLM, MINILM],
    {"STS-B test pairs": len(sts), "SciFact queries": len(qids), "SciFact docs": len(doc_ids)},
)

# %% [markdown]
# In the fast profile STS-B is a seeded subset of 150 of its 1,379 test pairs, and SciFact
# a 30-query slice of about 60 abstracts cut at 96 tokens: even a 135M decoder is slow on
# two CPU cores, and this notebook also generates text and trains. Scores on such small sets move by a few
# points from one subset to another, and the tiny corpus inflates retrieval scores; the
# full profile runs all of STS-B and the full 5,183-abstract SciFact corpus.
#
# ## 1. Causal attention: only the last token has read the whole text
#
# An encoder such as BERT lets every token attend to every other token. A decoder masks
# attention so that token $t$ sees tokens $0..t$ only: it was trained to predict the next
# token, and must not peek. Consequence: the hidden state of an early token does not
# depend on what follows it. We check it on two texts that share their first words.

# %%
# NBVAL_CHECK_OUTPUT
require_model(SMOLLM)
tok = AutoTokenizer.from_pretrained(SMOLLM)
lm = AutoModelForCausalLM.from_pretrained(SMOLLM).eval()
body = lm.model  # the decoder without its LM head: hidden states (B, L, D)
print("padding side:", tok.padding_side, "| eos:", tok.eos_token, tok.eos_token_id,
      "| pad:", tok.pad_token, tok.pad_token_id)  # fmt: skip

pair = ["The bank raised its interest rates.", "The bank of the river was muddy."]
with torch.inference_mode():
    h = [body(**tok(t, return_tensors="pt")).last_hidden_state[0] for t in pair]  # (L, D)
shared = 2  # "The", " bank"
print("shared prefix tokens:", tok.convert_ids_to_tokens(tok(pair[0]).input_ids[:shared]))
same_prefix = torch.allclose(h[0][:shared], h[1][:shared], atol=1e-4)
print("prefix states identical:", same_prefix)
print("last states cosine < 0.99:", float(torch.cosine_similarity(h[0][-1], h[1][-1], 0)) < 0.99)
assert same_prefix

# %% [markdown]
# "bank" has the same vector in both sentences: at that point the model has not yet seen
# "interest rates" or "river". Mean pooling averages such half-informed states; the last
# state is the only one conditioned on the whole text. E5-mistral appends an EOS token
# and takes its final hidden state, so that the pooled token is always the same "end of
# text" symbol, whatever the last word is.
#
# We embed with `embedlab.llm.DecoderEmbedder`: tokenize (EOS appended or not), run the
# body, pool. To compare mean and last-token pooling of the *same* forward pass, a custom
# pooling returns both, side by side.


# %%
def both_poolings(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) -> (B, 2D): [mean | last token], from one forward pass."""
    return torch.cat([mean_pool(hidden, mask), last_token_pool(hidden, mask)], dim=-1)


def sts_score(embedder: DecoderEmbedder, texts1: list[str], texts2: list[str]) -> float:
    """Spearman x 100 of cosine(e1, e2) vs gold on our STS-B pairs."""
    e = embedder.encode(texts1 + texts2, batch_size=32, progress=True)
    return 100 * sts_spearman(e[: len(texts1)], e[len(texts1) :], gold)


D = body.config.hidden_size
timings: dict[str, float] = {}
start = time.perf_counter()
no_eos = DecoderEmbedder(body, tok, both_poolings, max_length=256, append_eos=False)
e = no_eos.encode(s1 + s2, batch_size=32, normalize=False, progress=True)
e1, e2 = e[: len(s1)], e[len(s1) :]
pooling_scores = {
    "mean": 100 * sts_spearman(e1[:, :D], e2[:, :D], gold),
    "last token": 100 * sts_spearman(e1[:, D:], e2[:, D:], gold),
}
raw = DecoderEmbedder(body, tok, "lasttoken", max_length=256, append_eos=True)
pooling_scores["last token + EOS"] = sts_score(raw, s1, s2)
timings["STS-B, 3 poolings"] = time.perf_counter() - start

# %%
# NBVAL_IGNORE_OUTPUT
print(pd.Series(pooling_scores, name="STS-B Spearman x 100").round(2).to_string())
print({k: f"{v:.1f} s" for k, v in timings.items()})

# %%
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.barh(list(pooling_scores), list(pooling_scores.values()), color="tab:blue")
ax.set_xlabel("STS-B Spearman x 100 (raw SmolLM2-135M, no training)")
ax.invert_yaxis()
plt.tight_layout()
plt.show()
print("best raw pooling on this run:", max(pooling_scores, key=pooling_scores.get))
assert max(pooling_scores.values()) < 80, "an untrained LM should stay far below trained encoders"
if not FAST:  # the whole test set: the mean-pooled score of notebook 01 (37.15)
    assert abs(pooling_scores["mean"] - 37.15) < 1.0

# %% [markdown]
# For an *untrained* decoder none of the three poolings is good, and they are close to
# each other next to what training adds (section 5). Appending EOS does not by itself
# help a raw model: its EOS state was trained to predict what comes after an end of turn,
# not to summarise. The paper compares poolings only *after* fine-tuning, and reports that
# "the choice of pooling types ... does not affect the overall performance substantially"
# (its Table 4); it uses last token + EOS because fine-tuning then teaches that one fixed
# position to summarise the text, and we train the same way.
#
# Why the mean-pooled score here differs from notebooks 01 and 09: the model and the
# pooling are the same, the pairs are not. Notebook 01 scores all 1,379 test pairs, this
# notebook a seeded 150 and notebook 09 a seeded 200. For a model this weak, Spearman on
# so few pairs moves a lot from one sample to the next: the interval of the
# `last-token-minus-mean` claim row below shows how wide it is on these 150.
#
# **Try it**: pool the *first* token instead (`lambda h, m: h[:, 0]` with right padding).
# What score do you expect for a vector that has seen one word, and what do you get?
#
# ## 2. Pitfalls of last-token pooling
#
# **The pooled position must be the EOS token.** `tokenize_with_eos` truncates a text to
# `max_length - 1` tokens *before* appending EOS, so even a text longer than the limit
# ends with EOS; `check_pooled_is_eos` raises if any row does not.

# %%
# NBVAL_CHECK_OUTPUT
batch = raw.tokenize(s1[:32] + ["word " * 1000])  # the last text is far too long
print("batch (B, L):", tuple(batch["input_ids"].shape), "| max_length:", raw.max_length)
check_pooled_is_eos(batch["input_ids"], batch["attention_mask"], tok.eos_token_id)
print("pooled token of every row:", set(tok.convert_ids_to_tokens(batch["input_ids"][:, -1])))
plain = tok(s1[:4], return_tensors="pt", padding=True)  # no EOS appended
try:
    check_pooled_is_eos(plain["input_ids"], plain["attention_mask"], tok.eos_token_id)
except ValueError as err:
    print("without EOS:", str(err)[:60], "...")

# %% [markdown]
# **Right padding silently pools a pad token.** SmolLM2's tokenizer pads on the right
# (see the first cell). The tempting line `hidden[:, -1]` then reads, for every text
# shorter than the longest of its batch, a *pad* position. No error is raised: the pad
# token here is `<|im_end|>`, a real token with a real hidden state. The code below is
# what one writes first: append EOS as text, pad as the tokenizer likes, take the last
# column. The fix needs no extra forward pass: gather each row at its true last position
# (`last_token_pool`), or pad on the left, where the last column *is* the last token.


# %%
@torch.inference_mode()
def right_padded_pools(texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, ...]:
    """Naive hidden[:, -1] and the fixed gather, from the same right-padded forward passes."""
    naive, fixed, padded = [], [], 0
    for i in range(0, len(texts), batch_size):
        enc = tok([t + tok.eos_token for t in texts[i : i + batch_size]], padding=True,
                  return_tensors="pt")  # fmt: skip
        hidden = body(**enc).last_hidden_state  # (B, L, D)
        naive.append(hidden[:, -1])  # WRONG for every padded row
        fixed.append(last_token_pool(hidden, enc["attention_mask"]))
        padded += int((enc["attention_mask"][:, -1] == 0).sum())
    return torch.cat(naive).numpy(), torch.cat(fixed).numpy(), padded


start = time.perf_counter()
n = len(s1) // 2  # half of our pairs are enough to see it
naive, fixed, n_padded = right_padded_pools(s1[:n] + s2[:n])
timings["right-padding demo"] = time.perf_counter() - start
left = raw.encode(s1[:n] + s2[:n])
pad_scores = {
    "right padding, hidden[:, -1]": 100 * sts_spearman(naive[:n], naive[n:], gold[:n]),
    "right padding, gather at true length": 100 * sts_spearman(fixed[:n], fixed[n:], gold[:n]),
    "left padding (DecoderEmbedder)": 100 * sts_spearman(left[:n], left[n:], gold[:n]),
}
print(f"rows whose last column is a pad: {n_padded} of {2 * n}")
print(pd.Series(pad_scores, name="STS-B Spearman x 100").round(2).to_string())
cos = (naive * fixed).sum(1) / np.linalg.norm(naive, axis=1) / np.linalg.norm(fixed, axis=1)
print(f"cosine(naive, fixed) over padded rows: median {np.median(cos[cos < 0.9999]):.3f}")

# %%
assert n_padded > n, "most rows of an unsorted right-padded batch are padded"
assert (
    abs(
        pad_scores["right padding, gather at true length"]
        - pad_scores["left padding (DecoderEmbedder)"]
    )
    < 0.1
)
assert pad_scores["right padding, hidden[:, -1]"] < pad_scores["left padding (DecoderEmbedder)"] - 1

# %% [markdown]
# The naive vectors are not garbage (the pad position also attends to the whole text),
# which is what makes the bug silent: the score drops, nothing fails. Both fixes give the
# same score, as they must: with causal attention, pads placed *after* a text cannot
# change its states, and pads placed *before* it are masked out (we also pass position
# ids that skip them, so the positions match an unpadded run).
#
# **Batch results must equal one-at-a-time results.** This is the test that catches
# every padding bug at once. We check it for left and right padding.

# %%
# NBVAL_CHECK_OUTPUT
few = s1[:8]
for side in ("left", "right"):
    emb = DecoderEmbedder(body, tok, "lasttoken", max_length=256, padding_side=side)
    together = emb.encode(few, batch_size=8, sort_by_length=False)
    alone = np.concatenate([emb.encode([t]) for t in few])
    diff = float(np.abs(together - alone).max())
    print(f"{side:5s} padding: batch == one at a time: {diff < 1e-4}")
    assert diff < 1e-4, diff

# %% [markdown]
# ## 3. Instructions on the query side
#
# E5-mistral prepends a one-sentence task description to every *query*:
# `Instruct: {task}\nQuery: {text}`. Documents get none, so one document index serves
# every task. For a symmetric task such as STS both sides are "queries" and get the
# instruction. The tasks below are the paper's own evaluation instructions (its Table 14).

# %%
STS_TASK = "Retrieve semantically similar text."
SCIFACT_TASK = "Given a scientific claim, retrieve documents that support or refute the claim"
print(format_instruction(SCIFACT_TASK, beir.queries[qids[0]]))


def with_task(task: str, texts: list[str]) -> list[str]:
    return [format_instruction(task, t) for t in texts]


def scifact_ndcg(embedder: DecoderEmbedder, doc_emb: np.ndarray, task: str | None) -> float:
    """nDCG@10 x 100 on our SciFact slice; the instruction (if any) on queries only."""
    queries = [beir.queries[q] for q in qids]
    q_emb = embedder.encode(with_task(task, queries) if task else queries, batch_size=32)
    run = dense_search(q_emb, doc_emb, qids, doc_ids, k=10)
    return ndcg_at_10(run, qrels)


start = time.perf_counter()
raw_docs = DecoderEmbedder(body, tok, "lasttoken", max_length=DOC_LEN)
doc_emb_raw = raw_docs.encode(doc_texts, batch_size=16, progress=True)
results = {
    "raw, no instruction": {
        "STS-B": pooling_scores["last token + EOS"],
        "SciFact nDCG@10": scifact_ndcg(raw, doc_emb_raw, None),
    },
    "raw, instruction": {
        "STS-B": (
            sts_score(raw, with_task(STS_TASK, s1), with_task(STS_TASK, s2))
            if not FAST
            else float("nan")  # skipped in the fast profile: budget
        ),
        "SciFact nDCG@10": scifact_ndcg(raw, doc_emb_raw, SCIFACT_TASK),
    },
}
timings["instructions (raw model)"] = time.perf_counter() - start

# %%
# NBVAL_IGNORE_OUTPUT
print(pd.DataFrame(results).T.round(2).to_string())
print(f"SciFact: {len(qids)} queries, {len(doc_ids)} abstracts"
      + (" (a small seeded slice: scores are inflated, not comparable with MTEB)" if FAST else ""))  # fmt: skip
print({k: f"{v:.1f} s" for k, v in timings.items()})

# %% [markdown]
# (The fast profile measures the instruction on SciFact only; STS-B with instructions
# on the raw model is measured in the full profile.) On the raw model the instruction is
# just more text in front of the query: the model
# was never trained to read it as "this is the task", and the table shows whether it
# helps or hurts by chance. The paper trains *with* instructions, so that the model
# learns to use them; we do the same in section 5 and measure again.
#
# ## 4. Synthetic data: the paper's main idea
#
# E5-mistral's training data is mostly written by GPT-4: first it *brainstorms* retrieval
# tasks, then, for each task, writes one (query, positive document, hard negative) example
# as JSON. The paper produced about 500k examples for 150k unique instructions. We run
# the same two steps with SmolLM2-135M-Instruct, greedy decoding, prompts shortened from
# the paper's Appendix C (documents of 1-3 sentences instead of 50+ words, to fit the CPU
# budget), and a handful of samples.

# %%
BRAINSTORM = (
    "Brainstorm a list of potentially useful text retrieval tasks.\n"
    "Here are a few examples for your reference:\n"
    "- Provided a scientific claim as query, retrieve documents that help verify or refute the claim.\n"
    "- Search for documents that answer a FAQ-style query on children's nutrition.\n"
    "Your output must always be a python list of strings only, with about 10 elements, and "
    "each element corresponds to a distinct retrieval task in one sentence. Do not explain "
    "yourself or output anything else."
)
EXAMPLE = (
    "You have been assigned a retrieval task: {task}\n"
    "Your mission is to write one text retrieval example for this task in JSON format. "
    "The JSON object must contain the following keys:\n"
    '- "user_query": a string, a random user search query specified by the retrieval task.\n'
    '- "positive_document": a string, a relevant document for the user query.\n'
    '- "hard_negative_document": a string, a hard negative document that only appears '
    "relevant to the query.\n"
    "The query should be short; each document should be 1-3 sentences.\n"
    "Your output must always be a JSON object only, do not explain yourself or output "
    "anything else."
)
KEYS = ("user_query", "positive_document", "hard_negative_document")
N_EXAMPLES, NEW_TOKENS = (4, 128) if FAST else (32, 400)


@torch.inference_mode()
def generate(prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy chat completions, batched with left padding (generation needs it)."""
    chats = [[{"role": "user", "content": p}] for p in prompts]
    tok.padding_side = "left"
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True,
                                  return_tensors="pt", return_dict=True)  # fmt: skip
    tok.padding_side = "right"
    out = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.2,
                      pad_token_id=tok.pad_token_id)  # fmt: skip
    return tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


start = time.perf_counter()
brainstorm = generate([BRAINSTORM], 128 if FAST else 300)[0]
parsed = parse_string_list(brainstorm)
model_tasks = list(dict.fromkeys(parsed))  # unique, in order
print(f"brainstorm: {len(parsed)} tasks parsed, {len(model_tasks)} distinct")
print(brainstorm[:600])

# %% [markdown]
# The brainstorm is parsed with `parse_string_list`: the first JSON array of strings
# anywhere in the output, or else its numbered/bulleted lines (small models often ignore
# "a python list"). We drop duplicates, and when the model's list is short we top it up
# with hand-written tasks in the paper's style, saying how many came from where:

# %%
SEED_TASKS = [
    "Given a question about cooking, retrieve recipes that answer it.",
    "Given a medical symptom, retrieve articles describing possible causes.",
    "Given a programming error message, retrieve forum posts that fix it.",
    "Given a travel destination, retrieve guides about things to do there.",
    "Given a legal question, retrieve statutes that apply to it.",
    "Given a product name, retrieve customer reviews of it.",
    "Given a historical event, retrieve encyclopedia passages about it.",
    "Given a sports team, retrieve news reports about its recent games.",
]
tasks = (model_tasks + SEED_TASKS * 4)[:N_EXAMPLES]
print(f"tasks used: {min(len(model_tasks), N_EXAMPLES)} from the model, "
      f"{N_EXAMPLES - min(len(model_tasks), N_EXAMPLES)} hand-written")  # fmt: skip
outputs = []
for i in tqdm(range(0, len(tasks), 8), desc="generate"):
    outputs += generate([EXAMPLE.format(task=t) for t in tasks[i : i + 8]], NEW_TOKENS)
examples = [parse_examples(o, KEYS)[:1] for o in outputs]  # at most one example per output
valid = [ex[0] for ex in examples if ex]
timings["generation"] = time.perf_counter() - start
print(f"valid examples: {len(valid)} of {len(outputs)} outputs")

# %%
# NBVAL_IGNORE_OUTPUT
for task, out in list(zip(tasks, outputs, strict=True))[:3]:
    print(f"--- task: {task}\n{out[:500]}\n")
print(f"generation took {timings['generation']:.1f} s")

# %% [markdown]
# How good is this data? Validity of the JSON is only the first filter. A stricter,
# measurable one: does an independent, *trained* encoder (all-MiniLM-L6-v2) agree that the
# positive is closer to the query than the hard negative? And are the three fields
# actually different texts?


# %%
def judge(examples: list[dict[str, str]]) -> pd.DataFrame:
    """Per example: distinct fields, and MiniLM's cos(query, pos) - cos(query, neg)."""
    if not examples:
        return pd.DataFrame(columns=["query", "distinct", "margin"])
    minilm = load_model(MINILM)
    q, p, n = (minilm.encode([e[k] for e in examples], normalize_embeddings=True) for k in KEYS)
    margin = (q * p).sum(1) - (q * n).sum(1)
    distinct = [len({e[k].lower() for k in KEYS}) == 3 for e in examples]
    return pd.DataFrame({"query": [e["user_query"][:50] for e in examples],
                         "distinct": distinct, "margin": margin.round(3)})  # fmt: skip


verdict = judge(valid)
good = verdict[verdict["distinct"] & (verdict["margin"] > 0)] if len(verdict) else verdict
print(verdict.to_string(index=False) if len(verdict) else "no valid example to judge")
print(f"usable (valid JSON, distinct fields, positive closer than negative): "
      f"{len(good)} of {len(outputs)}")  # fmt: skip
MIN_SYNTHETIC = 256  # pairs needed for even a short contrastive run
use_synthetic = len(good) >= MIN_SYNTHETIC
print("train on synthetic pairs:", use_synthetic)

# %% [markdown]
# A 135M model writes JSON-*shaped* text, but read the outputs above: keys other than the
# ones asked for, missing quotes or colons, code mixed into the JSON, repetition, text
# cut off mid-object; the brainstorm may not even be a list. The paper's recipe rests on
# the *generator's* quality (GPT-4) and on volume (500k examples). With a handful of
# samples of which few, if any, survive parsing and the judge, there is nothing to train
# on, so we fall back to real pairs, as the paper also does for its best model (synthetic
# + 13 labelled datasets). Training on synthetic pairs needs a much stronger generator,
# or many more samples and a strict filter: the code path is `use_synthetic`, and in
# this run we report only the real-pair model.
#
# **Try it**: sample instead of greedy decoding (`do_sample=True, temperature=0.8`) and
# generate 16 examples. Does the valid fraction go up or down? What does the judge say?
#
# ## 5. Contrastive fine-tuning with LoRA
#
# The recipe of the paper, scaled down: LoRA adapters (rank 16) on every linear layer of
# the decoder, last-token pooling with EOS, the instruction on the query side, InfoNCE
# with in-batch negatives and temperature $\tau = 0.02$ (`embedlab.losses.info_nce`, query
# to document direction as in the paper). The training pairs are real:
#
# - SNLI entailment pairs (premise -> hypothesis), instruction *"Given a premise, retrieve
#   a hypothesis that is entailed by the premise"* (the paper's NLI instruction);
# - SciFact abstracts: title -> the rest of the abstract, instruction *"Given the title of
#   a scientific paper, retrieve its abstract"*, using only abstracts that are *not* in our
#   evaluation slice and not relevant to any test claim.
#
# Steps alternate between the two sources, 16 pairs per step. On two CPU cores one step
# of a 135M model costs seconds, so the fast profile trains only a handful of steps, and
# puts adapters on the top 10 of the 30 layers only: the backward pass then stops there,
# which makes a step much cheaper. The full profile trains all layers for 300 steps.

# %%
snli = load_snli("validation")
nli = [(r["premise"], r["hypothesis"]) for r in snli if r["label"] == 0]
rng.shuffle(nli)
test_relevant = {d for docs in beir.qrels.values() for d in docs}
full_corpus = load_scifact("test", corpus="full").corpus
sci = [(full_corpus[d]["title"], full_corpus[d]["text"]) for d in sorted(full_corpus)
       if d not in test_relevant and d not in set(doc_ids) and full_corpus[d]["title"]]  # fmt: skip
rng.shuffle(sci)
SOURCES = [
    ("Given a premise, retrieve a hypothesis that is entailed by the premise", nli),
    ("Given the title of a scientific paper, retrieve its abstract", sci),
]
BATCH, STEPS, LR, TAU = 16, max(16, round(300 * PROFILE.train_steps_scale)), 2e-3, 0.02
TRAIN_DOC_LEN = 48 if FAST else 256
N_LAYERS = body.config.num_hidden_layers
LORA_LAYERS = list(range(N_LAYERS - 10, N_LAYERS)) if FAST else None  # None: all layers
print(f"{len(nli):,} NLI pairs, {len(sci):,} SciFact title/abstract pairs; {STEPS} steps")

# %%
from peft import LoraConfig, get_peft_model  # noqa: E402

torch.manual_seed(0)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
lora = LoraConfig(
    r=16,
    lora_alpha=32,
    target_modules=targets,
    layers_to_transform=LORA_LAYERS,
    layers_pattern="layers" if LORA_LAYERS else None,
)
peft_body = get_peft_model(body, lora)
trainable = sum(p.numel() for p in peft_body.parameters() if p.requires_grad)
total = sum(p.numel() for p in peft_body.parameters())
print(f"trainable LoRA parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
queries_side = DecoderEmbedder(peft_body, tok, "lasttoken", max_length=128)
docs_side = DecoderEmbedder(peft_body, tok, "lasttoken", max_length=TRAIN_DOC_LEN)
opt = torch.optim.AdamW([p for p in peft_body.parameters() if p.requires_grad], lr=LR)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 5))

losses: list[tuple[int, int, float]] = []  # (step, source, loss)
start = time.perf_counter()
peft_body.train()
for step in tqdm(range(STEPS), desc="LoRA"):
    src = step % len(SOURCES)
    task, pairs = SOURCES[src]
    i = (step // len(SOURCES)) * BATCH % (len(pairs) - BATCH)
    q, d = zip(*pairs[i : i + BATCH], strict=True)
    loss = info_nce(
        queries_side(with_task(task, list(q))), docs_side(list(d)), TAU, symmetric=False
    )
    loss.backward()
    opt.step(), sched.step(), opt.zero_grad()
    losses.append((step, src, float(loss)))
peft_body.eval()
timings["LoRA training"] = time.perf_counter() - start

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for src, label in enumerate(["SNLI", "SciFact title->abstract"]):
    pts = [(s, v) for s, k, v in losses if k == src]
    ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=label)
ax.axhline(np.log(BATCH), color="gray", ls="--", lw=1, label="log(batch): chance")
ax.set_xlabel("step")
ax.set_ylabel("InfoNCE loss")
ax.legend()
plt.tight_layout()
plt.show()
first, last = np.mean([v for *_, v in losses[:4]]), np.mean([v for *_, v in losses[-4:]])
print(f"loss: first 4 steps {first:.2f}, last 4 steps {last:.2f}")
assert last < first, "the contrastive loss should go down"

# %% [markdown]
# The dashed line is chance level, $\log 16$: the loss of a model that cannot tell its
# own pair from the other 15 in the batch, and exactly the loss when every text maps to
# the same vector. The raw model starts above it (with $\tau = 0.02$ a confident wrong
# ranking costs more than chance). If the curve then sits on the dashed line for a
# while, the embeddings have collapsed to nearly one vector, which a high learning rate
# with a small temperature does easily; the loss leaves the line once the pairs start to
# separate. Watch for that plateau whenever you fine-tune with few steps.
#
# Now the same evaluations as before, with the adapters switched on:

# %%
tuned = DecoderEmbedder(peft_body, tok, "lasttoken", max_length=256)
tuned_docs = DecoderEmbedder(peft_body, tok, "lasttoken", max_length=DOC_LEN)
start = time.perf_counter()
doc_emb_tuned = tuned_docs.encode(doc_texts, batch_size=16, progress=True)
results["LoRA-tuned, instruction"] = {
    "STS-B": sts_score(tuned, with_task(STS_TASK, s1), with_task(STS_TASK, s2)),
    "SciFact nDCG@10": scifact_ndcg(tuned, doc_emb_tuned, SCIFACT_TASK),
}
results["LoRA-tuned, no instruction"] = {  # STS-B skipped: budget
    "STS-B": float("nan"),
    "SciFact nDCG@10": scifact_ndcg(tuned, doc_emb_tuned, None),
}
timings["evaluation (tuned)"] = time.perf_counter() - start
table = pd.DataFrame(results).T.round(2)
print(table.to_string())

# %%
# NBVAL_IGNORE_OUTPUT
print({k: f"{v:.1f} s" for k, v in timings.items()})

# %%
before, after = results["raw, no instruction"], results["LoRA-tuned, instruction"]
gain_sts = after["STS-B"] - before["STS-B"]
print(f"STS-B: {before['STS-B']:.1f} -> {after['STS-B']:.1f} ({gain_sts:+.1f})")
print(f"SciFact nDCG@10: {before['SciFact nDCG@10']:.1f} -> {after['SciFact nDCG@10']:.1f}")
if FAST:  # a handful of CPU steps: we only require the direction
    assert gain_sts > 0, "even a short contrastive run should lift STS-B above the raw LM"
else:  # 300 steps on all layers
    assert gain_sts > 10, "contrastive fine-tuning should lift STS-B far above the raw LM"
    assert after["SciFact nDCG@10"] > before["SciFact nDCG@10"]

# %% [markdown]
# The printed before/after lines are the lesson: a short contrastive run with
# instructions changes the decoder's embeddings far more on SciFact, where it also saw
# in-domain title/abstract pairs, than on STS-B, where a few CPU steps on NLI pairs are
# not enough to beat every raw pooling of section 1. The paper's jump needs its scale;
# the full profile trains ten times longer on all layers. The table also shows what the
# instruction does on SciFact *after* training with it (STS-B without instruction is
# skipped after training, to save time).
#
# **Try it**: set `TAU = 0.1` and re-run the training cell. The paper found a small
# temperature important; does the loss curve or the STS-B score change here?
#
# ## 6. A released LLM embedder (full profile only)
#
# Qwen3-Embedding-0.6B is a decoder-based embedder that fits a free Colab GPU. Its model
# card documents last-token pooling with left padding (built into its sentence-transformers
# configuration) and queries formatted as `Instruct: {task}\nQuery:{query}`, documents
# without instruction. The offline mirror does not hold it, and on CPU it would blow the
# time budget, so the fast profile skips it and says why.

# %%
QWEN = "Qwen/Qwen3-Embedding-0.6B"
released: dict[str, float] = {}
if is_offline() or FAST:
    why = "offline mode: the model mirror holds no copy" if is_offline() else "fast profile"
    print(f"skipped {QWEN}: {why} (0.6B parameters; run EMBEDLAB_PROFILE=full on a GPU)")
else:
    from sentence_transformers import SentenceTransformer

    from embedlab.cache import encode

    qwen = SentenceTransformer(QWEN, processor_kwargs={"padding_side": "left"})
    sts_prompt, sci_prompt = (f"Instruct: {t}\nQuery:" for t in (STS_TASK, SCIFACT_TASK))
    a, b = (encode(qwen, s, prompt=sts_prompt) for s in (s1, s2))
    released["STS-B"] = 100 * sts_spearman(a, b, gold)
    q_emb = encode(qwen, [beir.queries[q] for q in qids], prompt=sci_prompt)
    run = dense_search(q_emb, encode(qwen, doc_texts), qids, doc_ids, k=10)
    released["SciFact nDCG@10"] = ndcg_at_10(run, qrels)
    results[QWEN] = released
    print(released)
    assert released["STS-B"] > results["raw, no instruction"]["STS-B"]

# %% [markdown]
# ## 7. Beside the paper
#
# Wang et al. (2024) report MTEB *category averages* for E5-mistral-7b trained on
# synthetic + labelled data (their Table 1): STS 84.6 over 10 STS datasets, retrieval
# 56.9 nDCG@10 over 15 BEIR datasets, 66.6 over all 56 English MTEB datasets. Ours are
# single datasets (and subsets in the fast profile), so only the order of magnitude
# compares.

# %% [markdown]
# ## Summary

# %%
# NBVAL_IGNORE_OUTPUT
summary = pd.DataFrame(results).T.round(2).astype(object).fillna("skipped (budget)")
print(summary.to_string())
print("\nE5-mistral-7b (Table 1) reports averages over 10 STS sets (84.6) and over BEIR (56.9):")
print("different measures from one STS-B subset and one SciFact slice, so no row for it here")
print(f"\nSTS-B: {'seeded subset of ' if FAST else ''}{len(sts)} test pairs; SciFact: "
      f"{len(qids)} queries, {len(doc_ids)} docs ({'subset, inflated' if FAST else 'full corpus'})")  # fmt: skip
print(f"synthetic examples: {len(valid)} valid JSON of {len(outputs)}, {len(good)} usable")
print("pooling on the raw model:", {k: round(v, 2) for k, v in pooling_scores.items()})
tuned_setting = (
    f"SmolLM2-135M + LoRA, {len(sts)} STS-B pairs / {len(qids)} SciFact claims, {len(doc_ids)} docs"
)
pooling_gain = delta_spearman(
    pair_cosine(e1[:, :D], e2[:, :D]), pair_cosine(e1[:, D:], e2[:, D:]), gold
)  # last token minus mean, same pairs
embedlab.report_claims(
    "08",
    [
        embedlab.comparison(
            "last-token-minus-mean", "raw decoder, STS-B: last-token minus mean pooling",
            "E5-mistral (Wang et al. 2024) and Qwen3-Embedding pool the last token; "
            "SGPT uses position-weighted mean pooling",
            pooling_gain, f"SmolLM2-135M, {len(s1)} STS-B test pairs",
        ),
        embedlab.claim(
            "lora-stsb", "LoRA + InfoNCE with instruction, STS-B Spearman",
            "E5-mistral-7b Table 1 reports an average over 10 STS sets (84.6): a different "
            "measure", after["STS-B"], tuned_setting, "not comparable",
        ),
        embedlab.claim(
            "lora-scifact", "LoRA + InfoNCE with instruction, SciFact nDCG@10",
            "E5-mistral-7b Table 1 reports a BEIR average (56.9), not SciFact",
            after["SciFact nDCG@10"], tuned_setting, "not comparable",
        ),
        embedlab.claim(
            "synthetic-json-valid", "synthetic examples that parse as valid JSON, %",
            "E5-mistral (GPT-4 generator)", 100 * len(valid) / len(outputs),
            f"{len(outputs)} generations by SmolLM2-135M-Instruct", "not comparable",
        ),
    ],
)  # fmt: skip

# %% [markdown]
# - Causal attention leaves early hidden states blind to later words; last-token pooling
#   after an appended EOS reads the one state that has seen the whole text.
# - With right padding, `hidden[:, -1]` reads a pad token for most rows and silently
#   lowers the score; gathering at the true lengths, or left padding, restores it, and
#   batch and one-at-a-time embeddings then agree.
# - A 135M instruct model writes few usable synthetic examples: the paper's idea needs a
#   strong generator and volume (GPT-4, 500k examples); we trained on real pairs instead.
# - A few LoRA steps of InfoNCE (tau = 0.02) with instructions lift the decoder above the
#   raw model read the same way (last token after EOS): a lot on the SciFact slice, less
#   on STS-B. Compare the tables for the fast profile's honest limit: STS-B after
#   training can stay below the raw model's *best* pooling of section 1. The paper's
#   E5-mistral-7b is 50 times larger and trained on 500k synthetic plus labelled examples
#   with batch size 2048 for about a thousand steps.
#
# ## Exercises
#
# **Exercise 1.** Write `last_token_index(mask)` returning, for a (B, L) 0/1 mask padded on
# *either* side, the index of each row's last real token, using only `torch` (hint: the
# position of the last 1 is `L - 1 -` the position of the first 1 in the flipped mask).
# Check it on both padding sides against the true lengths.


# %%
def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) 0/1 -> (B,) index of the last 1 in each row."""
    return mask.shape[1] - 1 - mask.flip(1).long().argmax(dim=1)


enc = tok(s1[:6], padding=True, return_tensors="pt")  # right padding
assert torch.equal(last_token_index(enc["attention_mask"]), enc["attention_mask"].sum(1) - 1)
assert (last_token_index(enc["attention_mask"].flip(1)) == enc["attention_mask"].shape[1] - 1).all()

# %% [markdown]
# **Exercise 2.** A model answered the brainstorm with the text below. Use
# `embedlab.llm.extract_json` to recover the tasks, and count the outputs in `outputs`
# (section 4) that contain *at least one* JSON object, valid or not for our keys.

# %%
from embedlab.llm import extract_json  # noqa: E402

messy = (
    'Sure! ```python\n["Find recipes for a dish", "Retrieve laws on a topic"]\n``` Hope it helps'
)
assert extract_json(messy) == [["Find recipes for a dish", "Retrieve laws on a topic"]]
with_object = sum(any(isinstance(v, dict) for v in extract_json(o)) for o in outputs)
print(f"{with_object} of {len(outputs)} outputs hold a JSON object; {len(valid)} have all keys")
assert len(valid) <= with_object <= len(outputs)
