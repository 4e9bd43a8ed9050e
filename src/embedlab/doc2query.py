"""Synthetic training queries the doc2query way, and the round-trip filter (notebook 08).

E5-mistral's JSON examples need a strong generator (GPT-4); a small instruction model
can still write one short claim about a passage it is shown: doc2query (Nogueira et al. 2019), InPars
(Bonifacio et al. 2022), Promptagator (Dai et al. 2022). Promptagator's round-trip
filter keeps a generated query only if a retriever ranks its source passage in the top k.
Leaves out: sampling several queries per passage, the reranker InPars uses to filter,
and prompt ensembles. Production equivalent: a larger instruction model served with
``vllm`` or ``transformers.pipeline("text-generation")``, filtered the same way.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from embedlab.models import MINILM, SMOLLM

# the one shot: a passage and a claim it supports, shown before each real passage
SHOT_PASSAGE = (
    "Aspirin irreversibly inhibits cyclooxygenase in platelets, which lowers thromboxane "
    "synthesis and reduces the risk of arterial thrombosis in patients with coronary disease."
)
SHOT_CLAIM = "Aspirin lowers the risk of thrombosis by blocking platelet cyclooxygenase."
PROMPT = "Write a short claim that the passage supports.\n\nPassage: {shot}\nClaim: {claim}\n\n"
PROMPT += "Passage: {passage}\nClaim:"


def passage_head(text: str, words: int = 60) -> str:
    """The first ``words`` words of ``text``: short prompts generate faster and stay on topic."""
    if words < 1:
        raise ValueError(f"words must be >= 1, got {words}")
    if not text.strip():
        raise ValueError("empty passage: nothing to write a query about")
    return " ".join(text.split()[:words])


def doc2query_prompts(passages: Sequence[str], words: int = 60) -> list[str]:
    """One one-shot prompt per passage (plain text: the model continues after ``Claim:``)."""
    return [PROMPT.format(shot=SHOT_PASSAGE, claim=SHOT_CLAIM, passage=passage_head(p, words))
            for p in passages]  # fmt: skip


def first_line(text: str) -> str:
    """The generation up to its first newline, stripped: one claim, not a continuation."""
    return text.strip().split("\n", 1)[0].strip()


@torch.inference_mode()
def generate_queries(
    lm,
    tokenizer,
    passages: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 32,
    words: int = 60,
    progress: bool = False,
) -> list[str]:
    """Greedy doc2query generations, one per passage, batched with left padding.

    A decoder generates after the last position of each row, so every prompt must end at
    the same position: pad on the *left* (right padding would make short rows continue
    from pad tokens). The tokenizer's own padding side is left as found.
    Returns: Q strings (first line of each generation; may be empty).
    """
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1; got {batch_size}, "
                         f"{max_new_tokens}")  # fmt: skip
    prompts = doc2query_prompts(passages, words)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    starts = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="doc2query", unit="batch")
    out: list[str] = []
    for s in starts:
        enc = tokenizer(prompts[s : s + batch_size], return_tensors="pt", padding=True,
                        padding_side="left")  # fmt: skip
        ids = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                          pad_token_id=pad_id)  # fmt: skip
        new = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out += [first_line(t) for t in new]
    return out


def source_ranks(query_emb: np.ndarray, passage_emb: np.ndarray) -> np.ndarray:
    """(Q,) rank (0 = first) of each query's own passage among all passages.

    ``query_emb`` (Q, D) and ``passage_emb`` (Q, D) are unit vectors, row i of one made
    from row i of the other. Ties count against the source (a collapsed model keeps nothing).
    """
    q, p = np.asarray(query_emb, dtype=np.float32), np.asarray(passage_emb, dtype=np.float32)
    if q.ndim != 2 or q.shape != p.shape:
        raise ValueError(f"need two (Q, D) arrays of one shape, got {q.shape}, {p.shape}")
    if not (np.isfinite(q).all() and np.isfinite(p).all()):
        raise ValueError("embeddings must be finite (found NaN or inf)")
    s = q @ p.T  # (Q, Q), s[i, j] = cos(query_i, passage_j)
    own = np.diag(s)[:, None]
    return (s >= own).sum(axis=1) - 1


def round_trip_keep(query_emb: np.ndarray, passage_emb: np.ndarray, k: int) -> np.ndarray:
    """(Q,) bool: the query's own passage ranks in the top ``k`` of the pool (Promptagator).

    Production equivalent: the same test with a faiss index over a larger pool.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return source_ranks(query_emb, passage_emb) < k


# ------------------------------------------------------------------ generated once, then loaded


@dataclass(frozen=True)
class Doc2QueryRecipe:
    """Every setting that changes the generated pairs (the cache key hashes all of them).

    ``claims`` seeded SciFact test claims define the corpus slice the queries are
    generated for: every abstract they cite plus seeded others, ``passages`` in all.
    """

    generator: str = SMOLLM
    claims: int = 100
    passages: int = 320
    words: int = 60
    max_new_tokens: int = 32
    batch_size: int = 16
    seed: int = 0

    def key(self) -> str:
        """12 hex digits of the settings and the prompt: a different recipe, a different file."""
        from embedlab.common import settings_key

        return settings_key({**asdict(self), "prompt": PROMPT, "shot": [SHOT_PASSAGE, SHOT_CLAIM]})


def corpus_slice(recipe: Doc2QueryRecipe):
    """The SciFact test slice the recipe adapts to: a :class:`embedlab.data.Beir` of
    ``recipe.claims`` seeded test claims over ``recipe.passages`` abstracts (every abstract
    they cite, then seeded abstracts that no test claim cites).

    This is the setting of GPL and Promptagator: queries are generated for *every*
    document of the corpus to be searched, none chosen by its labels; the claims are
    only read to score the result.
    """
    from dataclasses import replace

    from embedlab.data import load_scifact

    test = load_scifact("test", corpus="full")
    if not 0 < recipe.claims <= len(test.qrels):
        raise ValueError(f"recipe.claims={recipe.claims}; expected 1..{len(test.qrels)}")
    qids = sorted(random.Random(recipe.seed).sample(sorted(test.qrels), recipe.claims))
    cited = sorted({d for q in qids for d in test.qrels[q]})
    uncited = sorted(set(test.corpus) - {d for docs in test.qrels.values() for d in docs})
    n_more = recipe.passages - len(cited)
    if not 0 <= n_more <= len(uncited):
        raise ValueError(f"recipe.passages={recipe.passages}; the {recipe.claims} claims cite "
                         f"{len(cited)} abstracts and {len(uncited)} others exist")  # fmt: skip
    docs = sorted(cited + random.Random(recipe.seed).sample(uncited, n_more))
    return replace(
        test, qrels={q: test.qrels[q] for q in qids}, queries={q: test.queries[q] for q in qids},
        corpus={d: test.corpus[d] for d in docs},
        subset_note=f"{recipe.claims} test claims over {len(docs)} abstracts (doc2query slice)",
    )  # fmt: skip


def source_passages(recipe: Doc2QueryRecipe) -> list[tuple[str, str]]:
    """(doc id, abstract body) of every abstract of :func:`corpus_slice`, sorted by id.

    The body without the title: shown a title, a small model copies it as its query.
    """
    corpus = corpus_slice(recipe).corpus
    return [(d, corpus[d]["text"]) for d in sorted(corpus) if corpus[d]["text"].strip()]


def pairs_path(recipe: Doc2QueryRecipe, root: Path | None = None) -> Path:
    """``<artifacts_dir()>/doc2query-<recipe.key()>.json`` (default ``$EMBEDLAB_HOME/models``)."""
    from embedlab.config import artifacts_dir

    return Path(root or artifacts_dir()) / f"doc2query-{recipe.key()}.json"


def build_pairs(recipe: Doc2QueryRecipe, root: Path | None = None, progress: bool = True) -> Path:
    """Generate one query per source passage unless cached; write the JSON atomically.

    The file holds ``{"recipe", "seconds", "rows": [{"doc_id", "passage", "query"}]}``
    (every generation, unfiltered: the filter is the notebook's lesson). Returns its path.
    """
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embedlab.cache import atomic_write
    from embedlab.offline import require_model

    path = pairs_path(recipe, root)
    if path.exists():
        return path
    require_model(recipe.generator)
    tok = AutoTokenizer.from_pretrained(recipe.generator)
    lm = AutoModelForCausalLM.from_pretrained(recipe.generator).eval()
    torch.manual_seed(recipe.seed)
    src = source_passages(recipe)
    start = time.perf_counter()
    queries = generate_queries(lm, tok, [p for _, p in src], recipe.batch_size,
                               recipe.max_new_tokens, recipe.words, progress)  # fmt: skip
    rows = [{"doc_id": d, "passage": p, "query": q} for (d, p), q in zip(src, queries, strict=True)]
    record = {
        "recipe": asdict(recipe),
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    atomic_write(path, lambda f: f.write(json.dumps(record, indent=1).encode("utf-8")))
    return path


def load_pairs(recipe: Doc2QueryRecipe, root: Path | None = None) -> dict:
    """The cached generations of a built recipe (see :func:`build_pairs` for the layout).

    Raises FileNotFoundError naming the build command when they are not cached.
    """
    path = pairs_path(recipe, root)
    if not path.exists():
        raise FileNotFoundError(
            f"no generated queries at {path}: build them once with `make artifacts` "
            "(python -m embedlab.doc2query build), or call embedlab.doc2query.generate_queries"
        )
    return json.loads(path.read_text("utf-8"))


RECIPE = Doc2QueryRecipe()  # what notebook 08 loads and `make artifacts` builds
FILTER_MODEL = MINILM  # the round-trip filter's retriever in notebook 08


def main(argv: list[str] | None = None) -> int:
    """``python -m embedlab.doc2query build``: generate and cache :data:`RECIPE`'s queries."""
    from embedlab.common import build_command

    return build_command("doc2query", lambda: build_pairs(RECIPE), argv)


if __name__ == "__main__":
    raise SystemExit(main())
