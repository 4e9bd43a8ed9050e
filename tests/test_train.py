"""embedlab.train: objective formats, the hand-written softmax objective, a tiny trainer run."""

from __future__ import annotations

import numpy as np
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


def _tiny_static():
    """A 4-dim StaticEmbedding over a 3-word vocabulary: trains in milliseconds, no mirror."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2, "c": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=4)], device="cpu")


def test_cached_model_builds_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_HOME", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        torch.manual_seed(len(calls))
        return _tiny_static(), {"settings.json": '{"steps": 3}'}

    first = T.cached_model("tiny-v1", build)
    second = T.cached_model("tiny-v1", build)
    assert calls == [1]
    assert (first.encode(["a b"]) == second.encode(["a b"])).all()
    folder = tmp_path / "models" / "tiny-v1"
    assert (folder / "settings.json").read_text() == '{"steps": 3}'  # side files, same rename
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(ValueError, match="plain folder name"):
        T.cached_model("../escape", build)


def test_training_args_are_quiet_seeded_and_warm_up():
    args = T.training_args("/tmp/x", batch_size=4, lr=1e-3, seed=7, steps=10, head_lr=0.5)
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == (10, 4, 1e-3)
    assert (args.seed, args.data_seed, args.warmup_steps) == (7, 7, 0.1)
    assert args.save_strategy == "no" and args.disable_tqdm and args.report_to in ([], "none")
    assert args.learning_rate_mapping == {T.HEAD_PATTERN: 0.5}
    assert args.logging_strategy == "no"
    logged = T.training_args("/tmp/x", batch_size=4, lr=1e-3, seed=0, epochs=2, log_every=3)
    assert (logged.num_train_epochs, logged.max_steps, logged.logging_steps) == (2, -1, 3)
    assert logged.learning_rate_mapping == {}
    cross = T.training_args("/tmp/x", batch_size=2, lr=1, seed=0, steps=1, cross_encoder=True)
    assert type(cross).__name__ == "CrossEncoderTrainingArguments"
    with pytest.raises(ValueError, match="exactly one of steps and epochs"):
        T.training_args("/tmp/x", batch_size=4, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="exactly one of steps and epochs"):
        T.training_args("/tmp/x", batch_size=4, lr=1e-3, seed=0, steps=1, epochs=1)


def test_quiet_trainer_class_has_no_model_card_callback():
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.base.model_card import BaseModelCardCallback
    from sentence_transformers.cross_encoder import CrossEncoderTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    assert issubclass(T.quiet_trainer_class(False), SentenceTransformerTrainer)
    assert issubclass(T.quiet_trainer_class(True), CrossEncoderTrainer)
    assert T.quiet_trainer_class(False) is T.quiet_trainer_class(False)  # built once
    model = _tiny_static()
    data = Dataset.from_dict({"anchor": ["a", "b"], "positive": ["a c", "b c"]})
    args = T.training_args("/tmp/x", batch_size=2, lr=0.1, seed=0, steps=1)
    trainer = T.quiet_trainer_class()(
        model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model)
    )
    cbs = trainer.callback_handler.callbacks
    assert not [c for c in cbs if isinstance(c, BaseModelCardCallback)]


PAIRS = Dataset.from_dict(
    {"anchor": ["a", "b", "c", "a b"], "positive": ["a c", "b", "c c", "b a"]}
)


def _fit_tiny(seed: int = 0, **settings):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(0)
    model = _tiny_static()
    before = model[0].embedding.weight.detach().clone()
    loss = MultipleNegativesRankingLoss(model)
    result = T.fit(model, PAIRS, loss, batch_size=2, lr=0.5, seed=seed, **settings)
    return before, result


def test_fit_trains_in_place_logs_and_is_seeded():
    before, result = _fit_tiny(steps=3, log_every=1)
    weights = result.model[0].embedding.weight.detach()
    assert not torch.equal(before, weights) and not result.model.training
    assert result.steps == 3 and result.examples == 6 and result.seconds > 0
    assert [s for s, _ in result.losses] == [1, 2, 3]
    _, again = _fit_tiny(steps=3, log_every=1)
    assert torch.equal(weights, again.model[0].embedding.weight)  # same seed, same weights
    _, other = _fit_tiny(seed=1, steps=3)
    assert not torch.equal(weights, other.model[0].embedding.weight)  # the seed orders data
    _, by_epoch = _fit_tiny(epochs=1)
    assert by_epoch.steps == 2 and by_epoch.losses == []  # 4 rows / 2 per step, no logging


def test_seeded_batches_cycle_epochs_and_keep_groups_together():
    batches = list(T.seeded_batches(8, 4, 5, seed=0, group_size=2))
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)
    for b in batches:
        assert all(b[i] % 2 == 0 and b[i + 1] == b[i] + 1 for i in range(0, 4, 2))
    assert sorted(np.concatenate(batches[:2])) == list(range(8))  # one epoch: every row once
    assert [b.tolist() for b in T.seeded_batches(8, 4, 5, 0, 2)] == [b.tolist() for b in batches]
    assert [b.tolist() for b in T.seeded_batches(8, 4, 5, 1, 2)] != [b.tolist() for b in batches]


def test_adamw_with_warmup_ramps_up_then_decays():
    body, head = [nn.Parameter(torch.zeros(2))], [nn.Parameter(torch.zeros(1))]
    frozen = nn.Parameter(torch.zeros(3), requires_grad=False)
    opt, sched = T.adamw_with_warmup(body + [frozen], head, lr=1.0, head_lr=10.0, steps=10,
                                     warmup=0.2)  # fmt: skip
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1]  # frozen one left out
    rates = []
    for _ in range(10):
        rates.append([g["lr"] for g in opt.param_groups])
        opt.step(), sched.step()
    body_rates = [r[0] for r in rates]
    assert body_rates[:3] == pytest.approx([0.5, 1.0, 8 / 9])  # warm = 2 steps, then decay
    assert body_rates[-1] == pytest.approx(1 / 9) and all(r[1] == 10 * r[0] for r in rates)


def test_run_steps_fits_a_line_and_records_the_curve():
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 16)[:, None]
    y = 3 * x + 1

    def step_loss(idx):
        return nn.functional.mse_loss(model(x[idx]), y[idx])

    def mse() -> float:
        assert not model.training  # evaluation runs in eval mode
        return float(nn.functional.mse_loss(model(x), y))

    with torch.no_grad():
        start = float(nn.functional.mse_loss(model(x), y))
    params = list(model.parameters())
    optimizer = T.adamw_with_warmup(params, [], 0.1, 0.0, steps=200, warmup=0.1)
    batches = T.seeded_batches(16, 4, 200, seed=0)
    log = T.run_steps(model, step_loss, optimizer, batches, params, eval_every=50, evaluate=mse)
    assert [s for s, _ in log.curve] == [50, 100, 150, 200] and log.steps == 200
    assert log.curve[-1][1] < 0.05 * start and not model.training
