"""Unit tests for embedlab.llm on a tiny random Llama and a word-level tokenizer (no downloads)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

from embedlab.llm import (
    DecoderEmbedder,
    check_pooled_is_eos,
    extract_json,
    format_instruction,
    last_token_pool,
    last_token_positions,
    mean_pool,
    parse_examples,
    parse_string_list,
    position_ids_from_mask,
    tokenize_with_eos,
)

WORDS = "the a cat dog sat on mat ran fast slow big small red blue house tree".split()
TEXTS = ["the cat sat", "a dog ran fast on the big red mat", "tree", "the small blue house"]


def make_tokenizer(eos: bool = True, pad: bool = False) -> PreTrainedTokenizerFast:
    """Word-level tokenizer; pad defaults to EOS in the embedder, as for SmolLM2."""
    vocab = {"<unk>": 0, "</s>": 1, "<pad>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    kwargs = ({"eos_token": "</s>"} if eos else {}) | ({"pad_token": "<pad>"} if pad else {})
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **kwargs)


@pytest.fixture(scope="module")
def tiny_model() -> LlamaModel:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(WORDS) + 3,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaModel(cfg).eval()


# ------------------------------------------------------------------------------ pooling


def test_last_token_positions_left_and_right():
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    left = right.flip(1)
    assert last_token_positions(right).tolist() == [1, 3, 0]
    assert last_token_positions(left).tolist() == [3, 3, 3]


def test_last_token_pool_handles_both_paddings():
    h = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    out = last_token_pool(h, right)
    assert torch.equal(out, torch.stack([h[0, 1], h[1, 3]]))
    assert not torch.equal(out, h[:, -1])  # the naive pick reads a pad in row 0
    assert torch.equal(last_token_pool(h, right.flip(1)), h[:, -1])


def test_mean_pool_ignores_pads_even_nan():
    h = torch.ones(2, 3, 2)
    h[0, 2] = float("nan")
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = mean_pool(h, mask)
    assert torch.isfinite(out).all() and torch.allclose(out, torch.ones(2, 2))


@pytest.mark.parametrize("fn", [last_token_pool, mean_pool])
def test_pooling_bad_input(fn):
    with pytest.raises(ValueError, match="must be \\(B, L, D\\)"):
        fn(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="attention_mask"):
        fn(torch.zeros(2, 3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="only 0"):
        fn(torch.zeros(1, 3, 4), torch.tensor([[1, 2, 0]]))
    with pytest.raises(ValueError, match="all padding"):
        fn(torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]))


def test_position_ids_from_mask_ignore_left_pads():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


# --------------------------------------------------------------------------- tokenizing


def test_tokenize_with_eos_appends_and_pads_left():
    tok = make_tokenizer()
    b = tokenize_with_eos(tok, ["the cat", "a dog ran fast"], max_length=16)
    assert b["input_ids"].shape == (2, 5)
    assert b["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert (b["input_ids"][:, -1] == tok.eos_token_id).all()
    check_pooled_is_eos(b["input_ids"], b["attention_mask"], tok.eos_token_id)


def test_tokenize_with_eos_right_padding_keeps_eos_at_true_length():
    tok = make_tokenizer()
    b = tokenize_with_eos(tok, ["the cat", "a dog ran fast"], max_length=16, padding_side="right")
    assert b["attention_mask"][0].tolist() == [1, 1, 1, 0, 0]
    assert b["input_ids"][0, -1] == tok.eos_token_id  # no pad token set: pads with EOS
    check_pooled_is_eos(b["input_ids"], b["attention_mask"], tok.eos_token_id)


def test_text_longer_than_max_length_keeps_eos():
    tok = make_tokenizer()
    long = " ".join(WORDS * 3)
    b = tokenize_with_eos(tok, [long, "cat"], max_length=8)
    assert b["input_ids"].shape == (2, 8)
    assert b["input_ids"][0, -1] == tok.eos_token_id
    check_pooled_is_eos(b["input_ids"], b["attention_mask"], tok.eos_token_id)


def test_missing_eos_is_detected():
    tok = make_tokenizer()
    enc = tok(["the cat"], return_tensors="pt")
    with pytest.raises(ValueError, match="not EOS"):
        check_pooled_is_eos(enc["input_ids"], enc["attention_mask"], tok.eos_token_id)


def test_tokenize_with_eos_bad_input():
    tok = make_tokenizer()
    with pytest.raises(ValueError, match="empty text"):
        tokenize_with_eos(tok, ["the cat", "  "], max_length=8)
    with pytest.raises(ValueError, match="no texts"):
        tokenize_with_eos(tok, [], max_length=8)
    with pytest.raises(ValueError, match="max_length"):
        tokenize_with_eos(tok, ["cat"], max_length=1)
    with pytest.raises(ValueError, match="padding_side"):
        tokenize_with_eos(tok, ["cat"], max_length=8, padding_side="middle")
    with pytest.raises(ValueError, match="no eos_token"):
        tokenize_with_eos(make_tokenizer(eos=False), ["cat"], max_length=8)


def test_format_instruction():
    assert format_instruction("Find similar text", "a cat") == (
        "Instruct: Find similar text\nQuery: a cat"
    )
    with pytest.raises(ValueError, match="task is empty"):
        format_instruction(" ", "a cat")
    with pytest.raises(ValueError, match="text is empty"):
        format_instruction("Find similar text", "")


# ------------------------------------------------------------------------ JSON parsing

KEYS = ("user_query", "positive_document", "hard_negative_document")


def test_extract_json_from_messy_output():
    text = (
        "Sure! Here it is:\n```json\n"
        '{"user_query": "q1", "positive_document": "p1", "hard_negative_document": "n1"}\n'
        "```\nAnd another: "
        '[{"user_query": "q2", "positive_document": "p2", "hard_negative_document": "n2"}] '
        '{"user_query": "cut off'
    )
    values = extract_json(text)
    assert len(values) == 2
    assert [e["user_query"] for e in parse_examples(text, KEYS)] == ["q1", "q2"]


def test_parse_examples_drops_incomplete_and_non_strings():
    text = (
        '{"user_query": "q", "positive_document": "p"} '
        '{"user_query": "q", "positive_document": "p", "hard_negative_document": ""} '
        '{"user_query": 3, "positive_document": "p", "hard_negative_document": "n"} '
        '{"user_query": " q ", "positive_document": "p", "hard_negative_document": "n", "x": 1}'
    )
    assert parse_examples(text, KEYS) == [
        {"user_query": "q", "positive_document": "p", "hard_negative_document": "n"}
    ]
    assert parse_examples("no json here", KEYS) == []
    assert parse_examples("", KEYS) == []


def test_parse_bad_input():
    with pytest.raises(ValueError, match="keys is empty"):
        parse_examples("{}", ())
    with pytest.raises(ValueError, match="must be a str"):
        extract_json(None)  # type: ignore[arg-type]


def test_parse_string_list():
    text = 'Tasks:\n["Find recipes", "", 3, "Retrieve laws"]\n["later"]'
    assert parse_string_list(text) == ["Find recipes", "Retrieve laws"]
    assert parse_string_list('{"a": 1}') == []


def test_parse_string_list_falls_back_to_bulleted_lines():
    text = "Here are tasks:\n\n1. Find recipes.\n2) Retrieve laws.\n- Find recipes.\nThanks"
    assert parse_string_list(text) == ["Find recipes.", "Retrieve laws.", "Find recipes."]
    assert parse_string_list(text, allow_lines=False) == []
    assert parse_string_list("") == []


# --------------------------------------------------------------------------- embedder


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("pooling", ["lasttoken", "mean"])
def test_batch_equals_one_at_a_time(tiny_model, padding_side, pooling):
    emb = DecoderEmbedder(tiny_model, make_tokenizer(), pooling, 16, padding_side=padding_side)
    batch = emb.encode(TEXTS, batch_size=4, normalize=False, sort_by_length=False)
    single = torch.cat([torch.from_numpy(emb.encode([t], normalize=False)) for t in TEXTS])
    assert batch.shape == (4, 32)
    assert torch.allclose(torch.from_numpy(batch), single, atol=1e-5)


def test_naive_last_position_is_wrong_with_right_padding(tiny_model):
    tok = make_tokenizer(pad=True)  # a pad token distinct from EOS
    naive = DecoderEmbedder(tiny_model, tok, lambda h, m: h[:, -1], 16, padding_side="right")
    fixed = DecoderEmbedder(tiny_model, tok, "lasttoken", 16, padding_side="right")
    a = naive.encode(TEXTS, sort_by_length=False)
    b = fixed.encode(TEXTS, sort_by_length=False)
    longest = max(range(4), key=lambda i: len(TEXTS[i].split()))
    assert torch.allclose(torch.tensor(a[longest]), torch.tensor(b[longest]), atol=1e-6)
    others = [i for i in range(4) if i != longest]
    assert all(float((a[i] * b[i]).sum()) < 0.9999 for i in others)


def test_encode_restores_order_when_sorting(tiny_model):
    emb = DecoderEmbedder(tiny_model, make_tokenizer(), max_length=16)
    a = emb.encode(TEXTS, batch_size=2, sort_by_length=True)
    b = emb.encode(TEXTS, batch_size=2, sort_by_length=False)
    assert torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-5)


def test_forward_has_gradients_and_works_with_lora(tiny_model):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    peft_model = get_peft_model(LlamaModel(tiny_model.config), cfg)
    emb = DecoderEmbedder(peft_model, make_tokenizer(), max_length=16)
    out = emb(TEXTS[:2])
    assert out.shape == (2, 32) and out.requires_grad
    out.sum().backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_embedder_bad_input(tiny_model):
    with pytest.raises(ValueError, match="pooling"):
        DecoderEmbedder(tiny_model, make_tokenizer(), pooling="cls")
    with pytest.raises(ValueError, match="padding_side"):
        DecoderEmbedder(tiny_model, make_tokenizer(), padding_side="up")
    emb = DecoderEmbedder(tiny_model, make_tokenizer(), max_length=16)
    with pytest.raises(ValueError, match="batch_size"):
        emb.encode(TEXTS, batch_size=0)
    with pytest.raises(ValueError, match="no texts"):
        emb.encode([])
    with pytest.raises(ValueError, match="empty text"):
        emb.encode(["cat", ""])
    no_eos = DecoderEmbedder(tiny_model, make_tokenizer(), max_length=16, append_eos=False)
    with pytest.raises(ValueError, match="empty text"):
        no_eos.encode([""])
