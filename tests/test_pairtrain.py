"""embedlab.pairtrain: the shared bi/cross training loop, and a head that learns word order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab import pairtrain as P
from embedlab.evaluate import spearman

WORDS = ["river", "doctor", "apple", "engine", "violin", "planet", "garden", "window"]
# label 1: the pair in its original order (a, b); label 0: the same two words swapped.
# A cosine bi-encoder is symmetric, cos(u, v) = cos(v, u), so it cannot tell them apart;
# a cross-encoder reads "[CLS] a [SEP] b" and sees which word comes first.
ORDERED = [(a, b) for i, a in enumerate(WORDS) for b in WORDS[i + 1 :]]
S1 = [a for a, b in ORDERED] + [b for a, b in ORDERED]
S2 = [b for a, b in ORDERED] + [a for a, b in ORDERED]
Y = np.array([1.0] * len(ORDERED) + [0.0] * len(ORDERED), dtype=np.float32)


@pytest.fixture(scope="module")
def cross(models_available):
    from sentence_transformers.cross_encoder import CrossEncoder

    from embedlab.models import MINILM

    torch.manual_seed(0)
    return CrossEncoder(MINILM, num_labels=1, max_length=8, device="cpu")


def test_cross_encoder_head_learns_word_order_a_bi_encoder_cannot(cross, models_available):
    from embedlab.models import MINILM, load_model

    before = P.cross_logits(cross, S1, S2)[:, 0]
    log = P.train_cross_encoder(
        cross, S1, S2, Y, "score", steps=60, batch_size=16, lr=5e-5, head_lr=1e-2,
        eval_every=20, evaluate=lambda: spearman(P.cross_logits(cross, S1, S2)[:, 0], Y),
    )  # fmt: skip
    after = P.cross_logits(cross, S1, S2)[:, 0]
    accuracy = float(((after > np.median(after)) == (Y == 1)).mean())
    assert accuracy >= 0.9, accuracy
    assert after.std() > 5 * before.std() or after.std() > 0.5  # no collapse onto the prior
    assert [s for s, _ in log.curve] == [20, 40, 60] and log.steps == 60
    # the symmetric bi-encoder scores a pair and its swap identically: chance, at best
    bi = load_model(MINILM, max_seq_length=8)
    cos = P.bi_predict(bi, None, S1, S2)
    n = len(ORDERED)
    assert np.allclose(cos[:n], cos[n:], atol=1e-5)


def test_listwise_loss_ranks_the_positive_first(cross):
    import copy

    model = copy.deepcopy(cross)
    s1 = [a for a, _ in ORDERED[:8] for _ in range(2)]
    s2 = [x for a, b in ORDERED[:8] for x in (b, a[::-1])]  # positive, then a negative
    P.train_cross_encoder(model, s1, s2, np.zeros(len(s1)), "listwise", steps=20,
                          batch_size=8, head_lr=1e-2, group_size=2)  # fmt: skip
    logits = P.cross_logits(model, s1, s2)[:, 0].reshape(-1, 2)
    assert (logits[:, 0] > logits[:, 1]).mean() >= 0.75


def test_train_cross_encoder_rejects_bad_input(cross):
    with pytest.raises(ValueError, match="objective"):
        P.train_cross_encoder(cross, S1, S2, Y, "mse", steps=1)
    with pytest.raises(ValueError, match="one target per pair"):
        P.train_cross_encoder(cross, S1, S2[:-1], Y, "score", steps=1)
    with pytest.raises(ValueError, match="steps"):
        P.train_cross_encoder(cross, S1, S2, Y, "score", steps=0)
    with pytest.raises(ValueError, match="multiples of group_size"):
        P.train_cross_encoder(cross, S1[:3], S2[:3], Y[:3], "listwise", steps=1, group_size=2)
    with pytest.raises(ValueError, match="no training pairs"):
        P.train_cross_encoder(cross, [], [], [], "score", steps=1)


def test_train_pairs_switches_on_the_model_kind(cross, models_available):
    import copy

    from embedlab.models import MINILM, load_model

    with pytest.raises(ValueError, match="kind"):
        P.train_pairs("poly", cross, S1, S2, Y, "score", steps=1)
    bi = load_model(MINILM, max_seq_length=8)
    with pytest.raises(ValueError, match="a bi-encoder takes"):
        P.train_pairs("bi", bi, S1, S2, Y, "listwise", steps=1, group_size=2)
    heads = []
    log, head = P.train_pairs("bi", bi, S1[:8], S2[:8], np.arange(8) % 3, "classify", steps=2,
                              batch_size=4, num_labels=3, eval_every=1,
                              evaluate=lambda h: heads.append(h) or 0.0)  # fmt: skip
    assert isinstance(head, torch.nn.Linear) and head.out_features == 3
    assert heads == [head, head] and log.steps == 2  # evaluate(head) at every step
    model = copy.deepcopy(cross)
    log, head = P.train_pairs("cross", model, S1[:8], S2[:8], Y[:8], "score", steps=1,
                              batch_size=4)  # fmt: skip
    assert head is None and log.steps == 1  # the cross-encoder's head is inside the model


def test_metric_and_per_item():
    gold = np.array([0, 1, 2, 1])
    logits = np.eye(3)[[0, 1, 1, 1]]
    assert P.metric("sick-nli", logits, gold) == 75.0
    assert P.per_item("sick-nli", logits, gold).tolist() == [1, 1, 0, 1]
    assert P.metric("stsb", np.array([0.1, 0.2, 0.3]), np.array([1, 2, 3])) == pytest.approx(100)
    with pytest.raises(ValueError, match="unknown pair task"):
        P.load_pair_task("mnli", "train")


def test_snli_trains_on_its_validation_split_and_tests_on_test(monkeypatch):
    from datasets import Dataset

    import embedlab.data as data

    asked = []

    def fake_snli(split):
        asked.append(split)
        n = 6
        return Dataset.from_dict({
            "premise": [f"{split} premise {i}" for i in range(n)],
            "hypothesis": [f"{split} hypothesis {i}" for i in range(n)],
            "label": [i % 3 for i in range(n)],
        })  # fmt: skip

    monkeypatch.setattr(data, "load_snli", fake_snli)
    train = P.load_pair_task("snli", "train")
    assert asked == ["validation"]  # no SNLI train split in the local copy
    assert sorted(train.s1) == [f"validation premise {i}" for i in range(6)]
    i = train.s1.index("validation premise 4")
    assert (train.s2[i], train.target[i], train.gold[i]) == ("validation hypothesis 4", 1, 1)
    assert P.load_pair_task("snli", "test").s1[0].startswith("test premise")
    with pytest.raises(ValueError, match="snli has splits"):
        P.load_pair_task("snli", "validation")  # would be the training pairs


def test_cached_comparison_reads_the_key_of_the_task_settings(tmp_path, monkeypatch):
    """A task's TASK_SETTINGS are part of its cache key: SNLI's build is found under the
    key of its 2,000 test pairs, and a call's own settings override the task's."""
    import json

    monkeypatch.setenv("EMBEDLAB_ARTIFACTS_DIR", str(tmp_path))
    stored = {"n_train": 8, "steps": 1, "curves": {"bi-encoder": [[1, 50.0]]},
              "seconds": {"bi-encoder": 0.1}, "predictions": {"bi-encoder": [[1, 0, 0]]},
              "scores": {"bi-encoder": 50.0}}  # fmt: skip
    snli = {**P.COMPARISON_SETTINGS, "n_test": 2000}
    (tmp_path / f"{P.comparison_key('snli', snli)}.json").write_text(json.dumps(stored))
    got = P.cached_comparison("snli")  # found, so nothing trains
    assert (got.n_train, got.scores) == (8, {"bi-encoder": 50.0})
    assert got.curves["bi-encoder"] == [(1, 50.0)]
    other = {**P.COMPARISON_SETTINGS, "n_test": 1000}
    assert P.comparison_key("snli", other) != P.comparison_key("snli", snli)
    (tmp_path / f"{P.comparison_key('snli', other)}.json").write_text(
        json.dumps({**stored, "n_train": 9})
    )
    assert P.cached_comparison("snli", {"n_test": 1000}).n_train == 9


def test_head_lr_dev_sweep_is_current_and_backs_the_chosen_rate():
    """COMPARISON_SETTINGS' head_lr rests on data/pair_dev_sweep.json (validation splits
    only): the sweep ran with today's settings, and on every swept head the chosen rate
    scores within 2 points of the best rate."""
    import json
    from pathlib import Path

    sweep = json.loads((Path(__file__).parents[1] / "data" / "pair_dev_sweep.json").read_text())
    assert sweep["settings"] == P.COMPARISON_SETTINGS, "rerun scripts/pair_dev_sweep.py"
    heads = {(r["task"], r["kind"]) for r in sweep["rows"]}
    assert heads == {("sick-nli", "cross"), ("sick-nli", "bi"), ("stsb", "cross")}
    for head in heads:
        scores = {
            r["head_lr"]: r["validation"] for r in sweep["rows"] if (r["task"], r["kind"]) == head
        }
        assert P.COMPARISON_SETTINGS["head_lr"] in scores and len(scores) >= 3, head
        assert max(scores.values()) - scores[P.COMPARISON_SETTINGS["head_lr"]] <= 2.0, head
