"""Bad input fails loudly: one test per case of issue 16 that is not covered elsewhere.

(Search, cache, app, config and offline cases live with their modules' tests and in
tests/test_faults.py; README's Reliability section maps every case to its test.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from embedlab import data
from embedlab.benchmark import paired_bootstrap
from embedlab.evaluate import spearman


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An EMBEDLAB_DATA_DIR in a temp folder; the Hub must never be called."""
    monkeypatch.setenv("EMBEDLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EMBEDLAB_OFFLINE", "1")

    def forbidden(*args, **kwargs):
        raise AssertionError("the Hub was called")

    monkeypatch.setattr(data.datasets, "load_dataset", forbidden)
    return tmp_path


def test_spearman_of_constant_predictions_is_a_valueerror_not_nan():
    with pytest.raises(ValueError, match="predicted scores are all equal"):
        spearman([0.5, 0.5, 0.5], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="gold scores are all equal"):
        spearman([0.1, 0.2, 0.3], [2.0, 2.0, 2.0])


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_paired_bootstrap_rejects_a_bad_resample_count(n):
    with pytest.raises(ValueError, match="n_resamples must be a positive int"):
        paired_bootstrap([0.1, 0.2], [0.2, 0.1], n_resamples=n)


def test_local_snli_drops_unlabelled_rows_like_the_hub(root):
    _jsonl(
        root / "snli/test.jsonl",
        [
            {"premise": "p .", "hypothesis": "h .", "label": 0},
            {"premise": "q .", "hypothesis": "i .", "label": -1},
        ],
    )
    assert data.load_snli("test")["label"] == [0]


@pytest.mark.parametrize("label", [3, "entailment", None, 1.0])
def test_local_labels_outside_the_classes_are_rejected(root, label):
    _jsonl(
        root / "sick/test.jsonl", [{"sentence1": "a", "sentence2": "b", "label": label, "score": 3}]
    )
    with pytest.raises(ValueError, match=r"row 1, field 'label'.*expected a label id 0\.\.2"):
        data.load_sick("test")


def test_null_text_is_rejected_not_turned_into_none(root):
    _jsonl(
        root / "stsb/test.jsonl",
        [{"sentence1": None, "sentence2": "b", "score": 3.0, "genre": "g"}],
    )
    with pytest.raises(ValueError, match="field 'sentence1' is None; expected a string"):
        data.load_stsb("test")


def test_null_scifact_title_is_rejected(root):
    _jsonl(root / "scifact/corpus.jsonl", [{"_id": "1", "title": None, "text": "t"}])
    _jsonl(root / "scifact/queries.jsonl", [{"_id": "q", "text": "claim"}])
    (root / "scifact/qrels").mkdir(parents=True)
    (root / "scifact/qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq\t1\t1\n")
    with pytest.raises(ValueError, match="'1 title' is None; expected a string"):
        data.load_scifact("test")


def test_non_numeric_score_is_rejected(root):
    _jsonl(root / "sickr/test.jsonl", [{"sentence1": "a", "sentence2": "b", "score": "high"}])
    with pytest.raises(ValueError, match="field 'score' is 'high'; expected a finite number"):
        data.load_sickr("test")


def test_empty_split_file_is_rejected(root):
    (root / "stsb").mkdir()
    (root / "stsb/test.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="test.jsonl holds no rows"):
        data.load_stsb("test")


def test_non_utf8_file_names_the_file_and_line(root):
    path = _jsonl(root / "sickr/test.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 2}])
    path.write_bytes(
        path.read_bytes() + b'{"sentence1": "caf\xe9", "sentence2": "b", "score": 2}\n'
    )
    with pytest.raises(ValueError, match=r"sickr/test.jsonl:2: not UTF-8 \(byte 0xe9"):
        data.load_sickr("test")


def test_sha256sums_is_verified_when_present(root):
    path = _jsonl(root / "sickr/test.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 2}])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (root / "SHA256SUMS").write_text(f"{digest}  sickr/test.jsonl\n", encoding="utf-8")
    assert len(data.load_sickr("test")) == 1
    _jsonl(path, [{"sentence1": "a", "sentence2": "b", "score": 5}])  # edited after the fact
    with pytest.raises(ValueError, match="does not match .*SHA256SUMS.*restore the original"):
        data.load_sickr("test")


def test_shared_data_matches_its_sha256sums():
    """The course's real data folder, when present, passes its own checksum list."""
    root = data.data_dir()
    if root is None or not (root / "SHA256SUMS").is_file():
        pytest.skip("needs EMBEDLAB_DATA_DIR with a SHA256SUMS")
    for name in data._read_sums(root / "SHA256SUMS"):
        data.verify_checksum(root, root / name)
