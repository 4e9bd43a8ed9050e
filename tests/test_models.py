"""The course's training start: MiniLM's input embeddings, averaged and normalised."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.models import static_start, training_start


def test_static_start_is_a_normalised_bag_of_token_vectors(models_available, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROFILE", "fast")
    model = static_start()
    assert [type(m).__name__ for m in model] == ["StaticEmbedding", "Normalize"]
    e = model.encode(["a man plays a guitar", "guitar a plays man a", "a dog runs"])
    assert e.shape == (3, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.allclose(e[0], e[1], atol=1e-6), "word order is invisible to a bag of tokens"
    assert float(e[0] @ e[2]) < 0.99
    same, name = training_start()
    assert "static" in name and [type(m).__name__ for m in same] == ["StaticEmbedding", "Normalize"]


def test_training_start_names_bert_in_the_full_profile(monkeypatch):
    import embedlab.models as models

    monkeypatch.setenv("EMBEDLAB_PROFILE", "full")
    monkeypatch.setattr(models, "load_model", lambda model_id: f"loaded {model_id}")
    model, name = training_start()
    assert model == f"loaded {models.BERT_BASE}" and "bert-base-uncased" in name


@pytest.mark.parametrize("profile_name", ["fast"])
def test_static_start_trains_in_place_without_touching_the_source(models_available, profile_name):
    """Two starts are independent copies: training one must not move the other."""
    a, b = static_start(), static_start()
    a[0].embedding.weight.data.mul_(2.0)
    assert not np.allclose(
        a[0].embedding.weight.detach().numpy(), b[0].embedding.weight.detach().numpy()
    )


# ------------------------------------------------------------------ cross-encoders


def test_cross_encoder_missing_offline_fails_before_any_load(monkeypatch, tmp_path):
    from embedlab.config import MissingOfflineAsset
    from embedlab.models import RERANKER, load_cross_encoder

    monkeypatch.setenv("EMBEDLAB_OFFLINE", "1")
    monkeypatch.setenv("EMBEDLAB_MIRROR_DIR", str(tmp_path / "no-mirror"))
    with pytest.raises(MissingOfflineAsset, match=RERANKER):
        load_cross_encoder()


def test_load_reranker_online_is_the_published_cross_encoder(monkeypatch):
    import embedlab.models as models
    from embedlab.rerank import load_reranker

    monkeypatch.delenv("EMBEDLAB_OFFLINE", raising=False)
    monkeypatch.setattr(models, "load_cross_encoder", lambda mid, cap: ("ce", mid, cap))
    model, note = load_reranker(max_length=64)
    assert model == ("ce", models.RERANKER, 64)
    assert note.startswith(models.RERANKER) and "MS MARCO" in note


def test_load_reranker_offline_is_the_scifact_build_described(monkeypatch):
    import embedlab.rerank as rerank

    info = {"pairs": 1234, "steps": 56, "settings": {"heldout": 78}}
    monkeypatch.setenv("EMBEDLAB_OFFLINE", "1")
    monkeypatch.setattr(rerank, "build_scifact_reranker", lambda: ("scifact", info))
    model, note = rerank.load_reranker()
    assert model == "scifact"
    assert "1,234 SciFact-train" in note and "56 steps" in note and "78 held-out" in note
