"""embedlab.doc2query: left-padded batched generation, the round-trip filter, the cache key."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_llm import WORDS, make_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from embedlab import doc2query as d2q

PASSAGES = ["the cat sat", "a dog ran fast on the big red mat near the tree", "tree house"]


@pytest.fixture(scope="module")
def tiny_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(WORDS) + 3, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, eos_token_id=1, pad_token_id=2)  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def test_batched_generation_with_left_padding_equals_one_at_a_time(tiny_lm):
    tok = make_tokenizer(pad=True)
    tok.padding_side = "right"  # the tokenizer's own side must not matter, and is kept
    one = [d2q.generate_queries(tiny_lm, tok, [p], max_new_tokens=6)[0] for p in PASSAGES]
    batched = d2q.generate_queries(tiny_lm, tok, PASSAGES, batch_size=3, max_new_tokens=6)
    assert batched == one
    assert any(one), "the tiny model generated nothing to compare"
    assert tok.padding_side == "right"


def test_right_padding_would_change_the_generations(tiny_lm):
    """The reason for left padding: right-padded short rows continue from pad tokens."""
    tok = make_tokenizer(pad=True)
    prompts = d2q.doc2query_prompts(PASSAGES)
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="right")
    with torch.inference_mode():
        ids = tiny_lm.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=2)
    right = [d2q.first_line(t) for t in
             tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]  # fmt: skip
    one = [d2q.generate_queries(tiny_lm, tok, [p], max_new_tokens=6)[0] for p in PASSAGES]
    assert right != one


def test_prompts_and_first_line():
    prompts = d2q.doc2query_prompts(["word " * 100], words=5)
    assert prompts[0].endswith("Passage: word word word word word\nClaim:")
    assert d2q.SHOT_CLAIM in prompts[0]
    assert d2q.first_line("  A claim.\nPassage: more text") == "A claim."
    with pytest.raises(ValueError, match="empty passage"):
        d2q.doc2query_prompts(["  "])
    with pytest.raises(ValueError, match="words"):
        d2q.passage_head("text", words=0)


def test_generate_rejects_bad_sizes(tiny_lm):
    with pytest.raises(ValueError, match="batch_size"):
        d2q.generate_queries(tiny_lm, make_tokenizer(pad=True), PASSAGES, batch_size=0)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_round_trip_keeps_queries_whose_source_ranks_in_top_k():
    p = np.eye(4, dtype=np.float32)  # four orthogonal passages
    q = unit(np.array([[1, 0, 0, 0], [0.2, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0.5, 1]], np.float32))
    # query 2 points at passage 3; its own passage ties with 0 and 1 at 0, so it ranks last
    assert d2q.source_ranks(q, p).tolist() == [0, 0, 3, 0]
    assert d2q.round_trip_keep(q, p, k=1).tolist() == [True, True, False, True]
    assert d2q.round_trip_keep(q, p, k=4).all()


def test_round_trip_ties_count_against_the_source():
    same = np.ones((3, 2), np.float32) / np.sqrt(2)  # a collapsed model: every score ties
    assert not d2q.round_trip_keep(same, same, k=2).any()


def test_round_trip_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        d2q.source_ranks(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        d2q.source_ranks(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match="k must be"):
        d2q.round_trip_keep(np.eye(2), np.eye(2), k=0)


def test_cache_key_follows_every_setting_and_the_prompt(monkeypatch):
    base = d2q.Doc2QueryRecipe()
    assert base.key() == d2q.Doc2QueryRecipe().key()
    for change in ({"passages": 10}, {"claims": 50}, {"words": 30}, {"max_new_tokens": 16}, {"seed": 1},
                   {"generator": "other/model"}, {"batch_size": 8}):  # fmt: skip
        assert d2q.Doc2QueryRecipe(**change).key() != base.key(), change
    before = base.key()
    monkeypatch.setattr(d2q, "PROMPT", d2q.PROMPT.replace("short claim", "question"))
    assert base.key() != before, "a new prompt must not load generations of the old one"


def test_load_pairs_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make artifacts"):
        d2q.load_pairs(d2q.RECIPE, root=tmp_path)
    path = d2q.pairs_path(d2q.RECIPE, root=tmp_path)
    path.write_text(json.dumps({"rows": [{"doc_id": "1", "passage": "p", "query": "q"}]}))
    assert d2q.load_pairs(d2q.RECIPE, root=tmp_path)["rows"][0]["query"] == "q"
    assert path.name == f"doc2query-{d2q.RECIPE.key()}.json"


def test_corpus_slice_holds_every_cited_abstract_and_only_uncited_others():
    from embedlab.data import load_scifact

    recipe = d2q.Doc2QueryRecipe(claims=20, passages=60)
    part = d2q.corpus_slice(recipe)
    test = load_scifact("test", corpus="full")
    cited = {d for q in part.qrels for d in test.qrels[q]}
    any_cited = {d for docs in test.qrels.values() for d in docs}
    assert len(part.qrels) == len(part.queries) == 20 and len(part.corpus) == 60
    assert cited <= set(part.corpus), "a claim's cited abstract is missing from its corpus"
    assert not (set(part.corpus) - cited) & any_cited, "a distractor is cited by a test claim"
    assert d2q.corpus_slice(recipe).doc_ids == part.doc_ids  # seeded
    ids = [d for d, _ in d2q.source_passages(recipe)]
    assert ids == sorted(part.corpus), "every abstract of the slice gets a query"
    with pytest.raises(ValueError, match="recipe.passages"):
        d2q.corpus_slice(d2q.Doc2QueryRecipe(claims=20, passages=5))
    with pytest.raises(ValueError, match="recipe.claims"):
        d2q.corpus_slice(d2q.Doc2QueryRecipe(claims=0))
