"""embedlab.lora: the recipe's cache key, the training loop and the cached adapter."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_llm import make_tokenizer
from transformers import LlamaConfig, LlamaModel

from embedlab import lora

SOURCES = [
    ("Retrieve a sentence", [("the cat sat", "a cat sat on the mat")] * 2
     + [("a dog ran", "the dog ran fast"), ("big house", "the big red house")] * 3),
    ("Retrieve a title", [("red tree", "the red tree"), ("blue mat", "a blue mat")] * 4),
]  # fmt: skip
TINY = lora.LoraRecipe(base="tiny", rank=4, alpha=8, top_layers=1, steps=4, batch_size=4,
                       lr=1e-2, query_tokens=16, doc_tokens=16)  # fmt: skip


def tiny_body() -> LlamaModel:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=19, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return LlamaModel(cfg).eval()


def test_key_changes_with_every_setting():
    base = lora.LoraRecipe()
    assert base.key() == lora.LoraRecipe().key() and len(base.key()) == 12
    for field, value in {"rank": 8, "steps": 10, "lr": 5e-4, "temperature": 0.1,
                         "top_layers": None, "doc_tokens": 32, "seed": 1}.items():  # fmt: skip
        assert replace(base, **{field: value}).key() != base.key(), field
    assert lora.adapter_dir(base).name == f"lora-{base.key()}"


def test_train_lora_moves_only_the_adapters_and_alternates_sources():
    body = tiny_body()
    frozen = {n: p.detach().clone() for n, p in body.named_parameters()}
    peft_body = lora.add_adapters(body, TINY)
    log, losses = lora.train_lora(peft_body, make_tokenizer(), SOURCES, TINY)
    assert log.steps == 4 and [s for s, _, _ in losses] == [1, 2, 3, 4]
    assert [src for _, src, _ in losses] == [0, 1, 0, 1]
    assert all(torch.isfinite(torch.tensor(v)) for *_, v in losses)
    changed = {n for n, p in peft_body.named_parameters() if "lora_B" in n and p.abs().sum() > 0}
    assert changed, "lora_B starts at zero; training must move it"
    base_now = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
                for n, p in peft_body.named_parameters() if "lora_" not in n}  # fmt: skip
    assert all(torch.equal(base_now[n], frozen[n]) for n in frozen), "the base stays frozen"
    assert not peft_body.training


def test_a_few_live_steps_retrace_the_first_steps_of_a_full_run():
    _, full = lora.train_lora(lora.add_adapters(tiny_body(), TINY), make_tokenizer(), SOURCES, TINY)
    _, few = lora.train_lora(
        lora.add_adapters(tiny_body(), TINY), make_tokenizer(), SOURCES, TINY, steps=3
    )
    assert [s for s, *_ in few] == [1, 2, 3]
    # same batches and the full run's learning-rate schedule, not a 3-step one
    assert torch.allclose(
        torch.tensor([v for *_, v in few]), torch.tensor([v for *_, v in full[:3]])
    )
    with pytest.raises(ValueError, match="steps must be"):
        lora.train_lora(lora.add_adapters(tiny_body(), TINY), make_tokenizer(), SOURCES, TINY, 9)


def test_train_lora_bad_input():
    peft_body = lora.add_adapters(tiny_body(), TINY)
    with pytest.raises(ValueError, match="batch_size"):
        lora.train_lora(peft_body, make_tokenizer(), [("t", SOURCES[0][1][:2])], TINY)
    with pytest.raises(ValueError, match="lr, temperature"):
        lora.train_lora(peft_body, make_tokenizer(), SOURCES, replace(TINY, temperature=0))
    with pytest.raises(ValueError, match="steps"):
        replace(TINY, steps=0).check()


def test_load_adapter_round_trip_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="make artifacts"):
        lora.load_adapter(tiny_body(), TINY, root=tmp_path)
    peft_body = lora.add_adapters(tiny_body(), TINY)
    lora.train_lora(peft_body, make_tokenizer(), SOURCES, TINY, steps=2)
    folder = lora.adapter_dir(TINY, root=tmp_path)
    peft_body.save_pretrained(str(folder))
    (folder / "losses.json").write_text(json.dumps({"seconds": 1.0, "losses": [[1, 0, 2.0]]}))
    loaded, record = lora.load_adapter(tiny_body(), TINY, root=tmp_path)
    assert record["losses"] == [[1, 0, 2.0]]
    ids = {"input_ids": torch.tensor([[3, 4, 5, 1]]), "attention_mask": torch.ones(1, 4)}
    with torch.inference_mode():
        assert torch.allclose(loaded(**ids).last_hidden_state, peft_body(**ids).last_hidden_state)


def test_build_adapter_trains_once_then_reuses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(lora, "load_base", lambda recipe: (tiny_body(), make_tokenizer()))
    monkeypatch.setattr(lora, "training_sources", lambda recipe: SOURCES)
    path = lora.build_adapter(TINY, root=tmp_path, progress=False)
    assert path == lora.adapter_dir(TINY, root=tmp_path)
    assert {"adapter_config.json", "recipe.json", "losses.json"} <= {f.name for f in path.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temp folder left behind"

    def no_training(recipe):
        raise AssertionError("a cached adapter must not be trained again")

    monkeypatch.setattr(lora, "load_base", no_training)
    assert lora.build_adapter(TINY, root=tmp_path) == path
    _, record = lora.load_adapter(tiny_body(), TINY, root=tmp_path)
    assert [s for s, *_ in record["losses"]] == list(range(1, TINY.steps + 1))


def test_title_pairs_leave_out_excluded_and_untitled_abstracts():
    class Train:  # the two fields of embedlab.data.Beir that title_pairs reads
        qrels = {"c1": {"d1": 1, "d2": 1}, "c2": {"d3": 1, "d4": 1}}
        corpus = {
            "d1": {"title": "Aspirin and stroke", "text": "We studied aspirin."},
            "d2": {"title": "  ", "text": "An untitled abstract."},
            "d3": {"title": "Sleep and memory", "text": "We studied sleep."},
            "d4": {"title": "Held out", "text": "A test claim cites this one."},
            "d5": {"title": "Never cited", "text": "No train claim cites this."},
        }

    pairs = lora.title_pairs({"d4"}, seed=0, train=Train())
    assert sorted(pairs) == [
        ("Aspirin and stroke", "We studied aspirin."),
        ("Sleep and memory", "We studied sleep."),
    ]
    assert lora.title_pairs({"d4"}, seed=0, train=Train()) == pairs  # seeded order
