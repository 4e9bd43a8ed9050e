"""embedlab.train: objective formats, the hand-written softmax objective, a tiny trainer run."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from torch import nn

from embedlab import train as T

SNLI_LIKE = Dataset.from_dict(
    {
        "premise": ["A dog runs.", "A dog runs.", "A dog runs.", "Kids play.", "Kids play."],
        "hypothesis": ["An animal moves.", "A dog sleeps.", "A cat sleeps.", "Kids sit.", "Fun."],
        "label": [0, 2, 2, 1, 0],
    }
)
STS_LIKE = Dataset.from_dict(
    {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "score": [5.0, 1.0], "genre": ["x", "y"]}
)


def test_to_classification_from_snli_and_sick_columns():
    out = T.to_classification(SNLI_LIKE)
    assert out.column_names == ["sentence1", "sentence2", "label"]
    assert out[1] == {"sentence1": "A dog runs.", "sentence2": "A dog sleeps.", "label": 2}
    sick = Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "label": [1], "score": [3.0]})
    assert T.to_classification(sick)[0] == {"sentence1": "a", "sentence2": "b", "label": 1}


def test_to_classification_rejects_bad_input():
    with pytest.raises(ValueError, match="label"):
        T.to_classification(STS_LIKE)
    with pytest.raises(ValueError, match="empty"):
        T.to_classification(SNLI_LIKE.select([]))
    with pytest.raises(ValueError, match="0/1/2"):
        T.to_classification(SNLI_LIKE.map(lambda r: {"label": 7}))
    with pytest.raises(ValueError, match="premise/hypothesis"):
        T.to_classification(Dataset.from_dict({"a": ["x"], "b": ["y"], "label": [0]}))


def test_to_regression_scales_scores():
    out = T.to_regression(STS_LIKE)
    assert out.column_names == ["sentence1", "sentence2", "label"]
    assert out["label"] == [1.0, 0.2]
    with pytest.raises(ValueError, match="score"):
        T.to_regression(SNLI_LIKE)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        T.to_regression(STS_LIKE, max_score=2.0)
    with pytest.raises(ValueError, match="max_score"):
        T.to_regression(STS_LIKE, max_score=0)


def test_to_triplets_pairs_entailment_with_contradiction():
    out = T.to_triplets(SNLI_LIKE)
    assert out.column_names == ["anchor", "positive", "negative"]
    assert len(out) == 1  # "Kids play." has no contradiction
    assert out[0]["anchor"] == "A dog runs." and out[0]["positive"] == "An animal moves."
    assert out[0]["negative"] in {"A dog sleeps.", "A cat sleeps."}
    with pytest.raises(ValueError, match="both an entailment and a contradiction"):
        T.to_triplets(SNLI_LIKE.select([3, 4]))


def test_to_objective_format_dispatches_and_rejects_unknown():
    assert T.to_objective_format(STS_LIKE, "regression")["label"] == [1.0, 0.2]
    assert len(T.to_objective_format(SNLI_LIKE, "triplet")) == 1
    with pytest.raises(ValueError, match="unknown objective"):
        T.to_objective_format(SNLI_LIKE, "contrastive")


class _Given(nn.Module):
    """A stand-in encoder: returns the embedding it is handed (so losses see fixed u, v)."""

    device = torch.device("cpu")

    def forward(self, features):
        return {"sentence_embedding": features["emb"]}


@pytest.mark.parametrize("difference,product", [(True, False), (False, False), (True, True)])
def test_softmax_classifier_loss_matches_sentence_transformers(difference, product):
    from sentence_transformers.sentence_transformer.losses import SoftmaxLoss

    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    labels = torch.randint(0, 3, (8,), generator=g)
    ref = SoftmaxLoss(
        _Given(), 5, 3,
        concatenation_sent_difference=difference,
        concatenation_sent_multiplication=product,
    )  # fmt: skip
    expected = ref([{"emb": u}, {"emb": v}], labels)
    mine = T.softmax_classifier_loss(
        u, v, labels, ref.classifier.weight, ref.classifier.bias, difference, product
    )
    assert torch.allclose(mine, expected, atol=1e-6)


def test_softmax_classifier_loss_rejects_bad_shapes():
    u = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="labels"):
        T.softmax_classifier_loss(
            u, u, torch.zeros(3, dtype=torch.long), torch.zeros(3, 9), torch.zeros(3)
        )
    with pytest.raises(ValueError, match="weight"):
        T.softmax_classifier_loss(
            u, u, torch.zeros(4, dtype=torch.long), torch.zeros(3, 6), torch.zeros(3)
        )


def test_scaled_steps(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROFILE", "fast")
    assert (
        T.scaled_steps(300) == 30 and T.scaled_steps(3) == 1 and T.scaled_steps(3, minimum=2) == 2
    )
    monkeypatch.setenv("EMBEDLAB_PROFILE", "full")
    assert T.scaled_steps(300) == 300
    with pytest.raises(ValueError, match=">= 1"):
        T.scaled_steps(0)


def test_make_loss_rejects_unknown_objective():
    with pytest.raises(ValueError, match="unknown objective"):
        T.make_loss("mse", model=None)


@pytest.fixture(scope="module")
def minilm(models_available):
    from embedlab.models import MINILM, load_model

    return load_model(MINILM, max_seq_length=16)


@pytest.mark.parametrize("objective", T.OBJECTIVES)
def test_train_runs_a_few_steps_and_changes_weights(minilm, objective):
    import copy

    model = copy.deepcopy(minilm)
    data = T.to_objective_format(STS_LIKE if objective == "regression" else SNLI_LIKE, objective)
    before = model[0].auto_model.encoder.layer[0].attention.self.query.weight.clone()
    result = T.train(model, data, T.make_loss(objective, model), steps=2, batch_size=2,
                     learning_rate=1e-3, log_every=1, progress=False)  # fmt: skip
    assert result.steps == 2 and [s for s, _ in result.losses] == [1, 2]
    assert all(torch.isfinite(torch.tensor(T.loss_curve(result))))
    after = model[0].auto_model.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(before, after) and not model.training


def test_train_rejects_bad_input(minilm):
    loss = T.make_loss("triplet", minilm)
    triplets = T.to_triplets(SNLI_LIKE)
    with pytest.raises(ValueError, match="empty"):
        T.train(minilm, triplets.select([]), loss, steps=1)
    with pytest.raises(ValueError, match="steps"):
        T.train(minilm, triplets, loss, steps=0)
    with pytest.raises(ValueError, match="expects columns"):
        T.train(minilm, T.to_classification(SNLI_LIKE), loss, steps=1)


def test_freeze_lower_layers_rejects_bad_input():
    with pytest.raises(ValueError, match="train_top"):
        T.freeze_lower_layers(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="no numbered transformer layers"):
        T.freeze_lower_layers(nn.Linear(2, 2), 1)


def test_freeze_lower_layers_keeps_only_the_top(minilm):
    import copy

    model = copy.deepcopy(minilm)
    trainable, total = T.freeze_lower_layers(model, 2)  # MiniLM has 6 layers
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert 0 < trainable < total
    assert any(".layer.5." in n for n in names) and any(".layer.4." in n for n in names)
    assert not any(".layer.3." in n or "embeddings" in n for n in names)


def test_finetuned_builds_once_then_loads(tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    from embedlab.train import finetuned

    monkeypatch.setenv("EMBEDLAB_HOME", str(tmp_path))
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    calls = []

    def build():
        calls.append(1)
        return SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=4)], device="cpu")

    first = finetuned("tiny-v1", build)
    second = finetuned("tiny-v1", build)
    assert calls == [1]
    assert (first.encode(["a b"]) == second.encode(["a b"])).all()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(ValueError, match="plain folder name"):
        finetuned("../escape", build)
