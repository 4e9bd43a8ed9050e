"""Token windows and max-sim aggregation for long documents."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from embedlab.chunking import chunk_corpus, max_sim, token_windows
from embedlab.models import MINILM


@pytest.fixture(scope="module")
def tok():
    from embedlab.offline import require_model

    require_model(MINILM)
    return AutoTokenizer.from_pretrained(MINILM)


TEXT = " ".join(f"word{i} is here." for i in range(60))  # a few hundred tokens


def n_tok(tok, s: str) -> int:
    return len(tok(s, add_special_tokens=False)["input_ids"])


def test_windows_fit_cover_and_overlap(tok):
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    w = token_windows(TEXT, tok, window=50, overlap=10)
    assert len(w) > 1 and all(n_tok(tok, c) <= 50 for c in w)
    assert all(c in TEXT for c in w)  # exact substrings
    assert TEXT.startswith(w[0]) and TEXT.endswith(w[-1])  # nothing lost at either end
    assert tok(w[0], add_special_tokens=False)["input_ids"] == ids[:50]  # = truncation
    assert tok(w[1], add_special_tokens=False)["input_ids"][:10] == ids[40:50]  # the overlap
    assert len(token_windows(TEXT, tok, window=50, overlap=0)) < len(w)


def test_short_text_is_one_window(tok):
    assert token_windows("A short claim.", tok, window=50) == ["A short claim."]
    assert token_windows("", tok, window=50) == [""]


def test_chunk_corpus_tracks_owner_and_position(tok):
    chunks, owner, pos = chunk_corpus(["short one", TEXT, "another"], tok, window=50)
    assert len(chunks) == len(owner) == len(pos)
    assert owner[0] == 0 and owner[-1] == 2 and (np.diff(owner) >= 0).all()
    assert pos[owner == 1].tolist() == list(range((owner == 1).sum()))


def test_max_sim_takes_each_documents_best_window():
    scores = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.4, 0.0, 0.8]])  # Q=2, C=4
    owner = np.array([0, 0, 1, 2])
    assert np.allclose(max_sim(scores, owner, 3), [[0.9, 0.3, 0.2], [0.5, 0.0, 0.8]])


@pytest.mark.parametrize(
    "call",
    [
        lambda t: token_windows(TEXT, t, window=0),
        lambda t: token_windows(TEXT, t, window=10, overlap=10),
        lambda t: chunk_corpus([], t, window=10),
        lambda t: max_sim(np.zeros((2, 3)), np.array([0, 1]), 2),  # C mismatch
        lambda t: max_sim(np.zeros((2, 3)), np.array([1, 0, 1]), 2),  # unsorted
        lambda t: max_sim(np.zeros((2, 3)), np.array([0, 0, 2]), 3),  # document 1 missing
    ],
)
def test_bad_input_raises(tok, call):
    with pytest.raises(ValueError):
        call(tok)
