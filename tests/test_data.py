"""Tests for embedlab.data: Hub column mapping (mocked), local files, real data, bad input.

Hub tests replace ``datasets.load_dataset`` with a fake that returns tiny datasets in
each Hub dataset's own schema (as documented next to each mapping in data.py), so they
run without network. Real-data tests read the shared copy through EMBEDLAB_DATA_DIR and
are skipped only when it is unset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import time
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from embedlab import data
from embedlab.config import FAST, FULL, MissingOfflineAsset

REAL_DATA_DIR = data.data_dir()  # read once, before any test changes the environment
needs_real_data = pytest.mark.skipif(
    REAL_DATA_DIR is None, reason="EMBEDLAB_DATA_DIR is not set (CI sets it to ../shared/data)"
)

SICK_HUB_LABEL = ClassLabel(names=["entailment", "neutral", "contradiction"])


# ---------------------------------------------------------------- helpers / fixtures


class FakeHub:
    """Stands in for ``datasets.load_dataset``; records every call."""

    def __init__(self, tables: dict[tuple[str, str | None], DatasetDict]) -> None:
        self.tables = tables
        self.calls: list[tuple[str, str | None, str | None, str | None]] = []

    def __call__(self, path, name=None, split=None, revision=None, **kwargs):
        self.calls.append((path, name, split, revision))
        return self.tables[(path, name)][split]


@pytest.fixture
def hub(monkeypatch):
    """Online, no local data: loaders must go through (the fake) load_dataset."""
    monkeypatch.delenv("EMBEDLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("EMBEDLAB_OFFLINE", raising=False)

    def install(tables):
        fake = FakeHub(tables)
        monkeypatch.setattr(data.datasets, "load_dataset", fake)
        return fake

    return install


@pytest.fixture
def no_hub(monkeypatch):
    """Any Hub access fails the test: local and error paths must not touch it."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"load_dataset called: {args} {kwargs}")

    monkeypatch.setattr(data.datasets, "load_dataset", forbidden)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_tsv(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def use_profile(monkeypatch, distractors: int | None) -> None:
    prof = dataclasses.replace(
        FAST if distractors is not None else FULL, scifact_distractors=distractors
    )
    monkeypatch.setattr(data, "profile", lambda: prof)


def assert_schema(ds: Dataset, name: str) -> None:
    spec = data.DATASETS[name]
    assert ds.column_names == list(spec.features)
    assert ds.features == spec.features


# ---------------------------------------------------------------- Hub branch (mocked)


def stsb_hub_rows() -> Dataset:
    # mteb/stsbenchmark-sts schema: split, genre, dataset, year, sid, score, sentence1, sentence2
    return Dataset.from_dict(
        {
            "split": ["test", "test", "test"],
            "genre": ["main-captions", "main-news", "main-forums"],
            "dataset": ["MSRvid", "headlines", "answer-answer"],
            "year": ["2012test", "2016", "2016"],
            "sid": ["0001", "0002", "0003"],
            "score": [5.0, 0.0, 2.4],
            "sentence1": ["A plane is taking off.", "Stocks rose.", "Yes."],
            "sentence2": ["An air plane is taking off.", "A dog sleeps.", "No."],
        }
    )


def test_hub_stsb_maps_columns_and_keeps_0_to_5(hub):
    fake = hub({("mteb/stsbenchmark-sts", None): DatasetDict(test=stsb_hub_rows())})
    ds = data.load_stsb("test")
    assert_schema(ds, "stsb")
    assert ds["score"][:] == [5.0, 0.0, 2.4]
    assert ds["genre"][:] == ["main-captions", "main-news", "main-forums"]
    assert fake.calls == [
        ("mteb/stsbenchmark-sts", None, "test", data.DATASETS["stsb"].hub_revision)
    ]


def test_hub_stsb_without_genre_fills_unknown(hub):
    hub(
        {("mteb/stsbenchmark-sts", None): DatasetDict(test=stsb_hub_rows().remove_columns("genre"))}
    )
    ds = data.load_stsb("test")
    assert_schema(ds, "stsb")
    assert set(ds["genre"][:]) == {"unknown"}


def test_hub_rescaled_scores_are_rejected(hub):
    rows = stsb_hub_rows().map(lambda r: {"score": r["score"] * 2})  # 0-10, not 0-5
    hub({("mteb/stsbenchmark-sts", None): DatasetDict(test=rows)})
    with pytest.raises(ValueError, match=r"expected 0\.0\.\.5\.0"):
        data.load_stsb("test")


def test_hub_sickr_maps_columns(hub):
    rows = Dataset.from_dict(
        {
            "sentence1": ["A kid plays.", "A man eats."],
            "sentence2": ["A child plays.", "A cat runs."],
            "score": [4.5, 1.0],
        }
    )
    fake = hub({("mteb/sickr-sts", None): DatasetDict(test=rows)})
    ds = data.load_sickr()
    assert_schema(ds, "sickr")
    assert ds["score"][:] == [4.5, 1.0]
    assert fake.calls[0][2:] == ("test", data.DATASETS["sickr"].hub_revision)


def test_hub_sick_renames_columns_and_keeps_label_order(hub):
    # RobZamp/sick schema (README dataset_info): relatedness_score is float32
    features = Features(
        {
            "id": Value("string"),
            "sentence_A": Value("string"),
            "sentence_B": Value("string"),
            "label": SICK_HUB_LABEL,
            "relatedness_score": Value("float32"),
            "entailment_AB": Value("string"),
            "entailment_BA": Value("string"),
            "sentence_A_original": Value("string"),
            "sentence_B_original": Value("string"),
            "sentence_A_dataset": Value("string"),
            "sentence_B_dataset": Value("string"),
        }
    )
    rows = Dataset.from_dict(
        {
            "id": ["1", "2", "3"],
            "sentence_A": ["A kid plays.", "A man eats.", "A dog runs."],
            "sentence_B": ["A child plays.", "A man is not eating.", "An animal moves."],
            "label": [0, 2, 1],
            "relatedness_score": [4.5, 3.25, 1.0],
            "entailment_AB": ["A_entails_B", "A_contradicts_B", "A_neutral_B"],
            "entailment_BA": ["B_entails_A", "B_contradicts_A", "B_neutral_A"],
            "sentence_A_original": ["x", "y", "z"],
            "sentence_B_original": ["x", "y", "z"],
            "sentence_A_dataset": ["FLICKR", "SEMEVAL", "FLICKR"],
            "sentence_B_dataset": ["FLICKR", "SEMEVAL", "FLICKR"],
        },
        features=features,
    )
    fake = hub({("RobZamp/sick", None): DatasetDict(train=rows)})
    ds = data.load_sick("train")
    assert_schema(ds, "sick")
    assert ds["label"][:] == [0, 2, 1]
    assert ds.features["label"].int2str(2) == "contradiction"
    assert ds["score"][:] == [4.5, 3.25, 1.0]
    assert ds["sentence1"][0] == "A kid plays."
    assert fake.calls[0][3] == "refs/convert/parquet"  # main still holds a loading script


def test_hub_snli_drops_unlabelled_rows(hub):
    rows = Dataset.from_dict(
        {
            "premise": ["A man sleeps.", "A man sleeps.", "Two dogs run.", "Two dogs run."],
            "hypothesis": ["A person rests.", "Nobody sleeps.", "Cats run.", "Dogs move."],
            "label": [0, -1, 2, 1],
        },
        features=Features(
            {"premise": Value("string"), "hypothesis": Value("string"), "label": SICK_HUB_LABEL}
        ),
    )
    fake = hub({("stanfordnlp/snli", "plain_text"): DatasetDict(validation=rows)})
    ds = data.load_snli("validation")
    assert_schema(ds, "snli")
    assert len(ds) == 3
    assert ds["label"][:] == [0, 2, 1]
    assert ds["hypothesis"][:] == ["A person rests.", "Cats run.", "Dogs move."]
    assert fake.calls[0][:3] == ("stanfordnlp/snli", "plain_text", "validation")


def scifact_hub_tables() -> dict:
    corpus = Dataset.from_dict(
        {"_id": ["10", "20", "30"], "title": ["T10", "T20", "T30"], "text": ["A10", "A20", "A30"]}
    )
    queries = Dataset.from_dict(
        {"_id": ["1", "2", "3"], "text": ["claim one", "claim two", "claim three"]}
    )
    qrels = Dataset.from_dict(
        {"query-id": ["1", "1", "3"], "corpus-id": ["10", "30", "20"], "score": [1.0, 1.0, 1.0]}
    )
    return {
        ("mteb/scifact", "corpus"): DatasetDict(corpus=corpus),
        ("mteb/scifact", "queries"): DatasetDict(queries=queries),
        ("mteb/scifact", "default"): DatasetDict(test=qrels),
    }


def test_hub_scifact_builds_beir(hub):
    fake = hub(scifact_hub_tables())
    beir = data.load_scifact("test", corpus="full")
    assert beir.corpus == {
        "10": {"title": "T10", "text": "A10"},
        "20": {"title": "T20", "text": "A20"},
        "30": {"title": "T30", "text": "A30"},
    }
    assert beir.queries == {"1": "claim one", "3": "claim three"}  # only judged queries
    assert beir.qrels == {"1": {"10": 1, "30": 1}, "3": {"20": 1}}
    assert all(type(s) is int for docs in beir.qrels.values() for s in docs.values())
    assert {(c[1], c[2]) for c in fake.calls} == {
        ("corpus", "corpus"),
        ("queries", "queries"),
        ("default", "test"),
    }


def test_hub_scifact_rejects_fractional_scores(hub):
    tables = scifact_hub_tables()
    tables[("mteb/scifact", "default")] = DatasetDict(
        test=Dataset.from_dict({"query-id": ["1"], "corpus-id": ["10"], "score": [0.5]})
    )
    hub(tables)
    with pytest.raises(ValueError, match="not integral"):
        data.load_scifact("test", corpus="full")


# ---------------------------------------------------------------- local branch (fixtures)


@pytest.fixture
def local(tmp_path, monkeypatch, no_hub):
    """A tiny folder laid out like shared/data, used through EMBEDLAB_DATA_DIR."""
    monkeypatch.setenv("EMBEDLAB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EMBEDLAB_OFFLINE", raising=False)
    write_jsonl(
        tmp_path / "stsb/validation.jsonl",
        [
            {
                "sentence1": "A cat.",
                "sentence2": "A cat sits.",
                "score": 3.8,
                "genre": "main-captions",
            },
            {
                "sentence1": "Stocks.",
                "sentence2": "Dogs.",
                "score": 0,
                "genre": "main-news",
                "extra": 1,
            },
        ],
    )
    write_jsonl(tmp_path / "sickr/test.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 1}])
    write_jsonl(
        tmp_path / "sick/test.jsonl",
        [
            {"sentence1": "a", "sentence2": "b", "label": 1, "score": 3.3},
            {"sentence1": "c", "sentence2": "d", "label": 2, "score": 5.0},
        ],
    )
    write_jsonl(tmp_path / "snli/test.jsonl", [{"premise": "p .", "hypothesis": "h .", "label": 0}])
    docs = [{"_id": str(i), "title": f"T{i}", "text": f"abstract {i}"} for i in range(100, 110)]
    write_jsonl(tmp_path / "scifact/corpus.jsonl", docs)
    write_jsonl(
        tmp_path / "scifact/queries.jsonl",
        [
            {"_id": "1", "text": "claim one"},
            {"_id": "2", "text": "claim two"},
            {"_id": "3", "text": "unjudged"},
        ],
    )
    write_tsv(
        tmp_path / "scifact/qrels/test.tsv",
        ["query-id\tcorpus-id\tscore", "1\t101\t1", "2\t105\t1", "2\t107\t1"],
    )
    return tmp_path


def test_local_pairs_have_the_hub_schema(local):
    stsb = data.load_stsb("validation")
    assert_schema(stsb, "stsb")
    assert stsb["score"][:] == [3.8, 0.0]
    assert_schema(data.load_sickr(), "sickr")
    sick = data.load_sick("test")
    assert_schema(sick, "sick")
    assert sick["label"][:] == [1, 2]
    snli = data.load_snli("test")
    assert_schema(snli, "snli")
    assert snli[0] == {"premise": "p .", "hypothesis": "h .", "label": 0}


def test_local_malformed_jsonl_names_file_and_line(local):
    path = local / "sickr/test.jsonl"
    path.write_text(
        '{"sentence1": "a", "sentence2": "b", "score": 2}\n{"sentence1": "a"}\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match=rf"{path}:2: missing field"):
        data.load_sickr()


def test_local_scifact_full(local, monkeypatch):
    use_profile(monkeypatch, None)  # FULL profile: auto -> full corpus
    beir = data.load_scifact("test")
    assert len(beir.corpus) == 10
    assert beir.queries == {"1": "claim one", "2": "claim two"}
    assert beir.qrels == {"1": {"101": 1}, "2": {"105": 1, "107": 1}}
    assert beir.doc_ids == sorted(beir.corpus)
    assert beir.doc_texts[0] == "T100 abstract 100"
    assert beir.sizes == "scifact test: 2 queries, 3 qrels, 10 docs"
    assert beir.subset_note.startswith("full corpus")


def test_local_scifact_subset(local, monkeypatch):
    use_profile(monkeypatch, 2)
    beir = data.load_scifact("test")  # auto -> subset under a profile with distractors
    assert set(beir.corpus) >= {"101", "105", "107"}
    assert len(beir.corpus) == 3 + 2
    assert "inflated" in beir.subset_note
    assert data.load_scifact("test", corpus="subset").doc_ids == beir.doc_ids
    assert len(data.load_scifact("test", corpus="full").corpus) == 10


def test_subset_under_full_profile_uses_fast_size(local, monkeypatch):
    use_profile(monkeypatch, None)
    beir = data.load_scifact("test", corpus="subset")
    assert len(beir.corpus) == 10  # FAST's 1,000 distractors, capped at the 7 available


def test_subset_doc_ids_is_seeded_over_sorted_ids():
    ids = [str(i) for i in range(50)]
    qrels = {"q": {"7": 1, "9": 0}}  # a zero grade is judged but not relevant
    shuffled = random.Random(1).sample(ids, len(ids))
    got = data.subset_doc_ids(shuffled, qrels, 5)
    expected = random.Random(0).sample(sorted(set(ids) - {"7"}), 5)
    assert got == sorted({"7", *expected})
    assert data.subset_doc_ids(ids, qrels, 5) == got
    assert data.subset_doc_ids(ids, qrels, 10_000) == sorted(ids)
    with pytest.raises(ValueError, match=">= 0"):
        data.subset_doc_ids(ids, qrels, -1)


# ---------------------------------------------------------------- real data


@pytest.fixture
def real(monkeypatch, no_hub):
    monkeypatch.setenv("EMBEDLAB_DATA_DIR", str(REAL_DATA_DIR))


@needs_real_data
@pytest.mark.parametrize(
    ("loader", "split", "rows"),
    [
        (data.load_stsb, "train", 5749),
        (data.load_stsb, "validation", 1500),
        (data.load_stsb, "test", 1379),
        (data.load_sickr, "test", 9927),
        (data.load_sick, "train", 4439),
        (data.load_sick, "validation", 495),
        (data.load_sick, "test", 4906),
        (data.load_snli, "validation", 9842),
        (data.load_snli, "test", 9824),
    ],
)
def test_real_row_counts(real, loader, split, rows):
    ds = loader(split)
    assert len(ds) == rows
    assert ds.features == data.DATASETS[loader.__name__.removeprefix("load_")].features


@needs_real_data
def test_real_scifact_sizes(real):
    test = data.load_scifact("test", corpus="full")
    assert (len(test.queries), test.n_pairs, len(test.corpus)) == (300, 339, 5183)
    train = data.load_scifact("train", corpus="full")
    assert (len(train.queries), train.n_pairs) == (809, 919)


@needs_real_data
def test_real_scifact_subset_is_deterministic_and_complete(real, monkeypatch):
    use_profile(monkeypatch, FAST.scifact_distractors)
    first, second = data.load_scifact("test"), data.load_scifact("test", corpus="subset")
    assert first.doc_ids == second.doc_ids
    relevant = {d for docs in first.qrels.values() for d in docs}
    assert relevant <= set(first.corpus)
    assert len(first.corpus) == len(relevant) + 1000 == 283 + 1000
    # pins the sample itself: a change here shifts every fast-profile SciFact score
    digest = hashlib.sha256("\n".join(first.doc_ids).encode()).hexdigest()[:16]
    assert digest == "89c6eae02c4b4cce"


# ---------------------------------------------------------------- bad input


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"unknown dataset 'stsbenchmark'.*'sick'"):
        data.check_split("stsbenchmark", "test")


@pytest.mark.parametrize(
    ("call", "valid"),
    [
        (lambda: data.load_stsb("dev"), "['train', 'validation', 'test']"),
        (lambda: data.load_sickr("train"), "['test']"),
        (lambda: data.load_snli("train"), "['validation', 'test']"),
        (lambda: data.load_scifact("dev"), "['train', 'test']"),
    ],
)
def test_unknown_split_lists_valid_ones(no_hub, call, valid):
    with pytest.raises(ValueError, match="unknown split") as err:
        call()
    assert valid in str(err.value)


def test_unknown_corpus_mode(no_hub):
    with pytest.raises(ValueError, match=r"unknown corpus mode 'tiny'.*'auto', 'full', 'subset'"):
        data.load_scifact("test", corpus="tiny")


def test_available_lists_every_dataset():
    assert data.available() == {
        "stsb": ("train", "validation", "test"),
        "sickr": ("test",),
        "sick": ("train", "validation", "test"),
        "snli": ("validation", "test"),
        "scifact": ("train", "test"),
    }


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ([("q1", "d1", 1)], "qrels is a list"),
        ({}, "qrels is empty"),
        ({"q1": ["d1"]}, r"qrels\['q1'\] is \['d1'\]"),
        ({"q1": {}}, r"qrels\['q1'\] is \{\}"),
        ({1: {"d1": 1}}, "ids must be str"),
        ({"q1": {2: 1}}, "is not a str"),
        ({"q1": {"d1": "1"}}, "non-negative numbers"),
        ({"q1": {"d1": True}}, "non-negative numbers"),
        ({"q1": {"d1": -1}}, "non-negative numbers"),
        ({"q1": {"d1": math.nan}}, "non-negative numbers"),
    ],
)
def test_check_qrels_rejects_malformed(qrels, message):
    with pytest.raises(ValueError, match=message):
        data.check_qrels(qrels)


def test_check_qrels_rejects_docs_missing_from_corpus():
    qrels = {"q1": {"d1": 1, "d9": 1}}
    data.check_qrels(qrels)  # fine without a corpus
    with pytest.raises(ValueError, match=r"1 judged doc id\(s\) are not in the corpus.*'d9'"):
        data.check_qrels(qrels, corpus_ids=["d1", "d2"])


def test_local_scifact_qrels_pointing_outside_corpus(local):
    write_tsv(local / "scifact/qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1\t999\t1"])
    with pytest.raises(ValueError, match="not in the corpus"):
        data.load_scifact("test", corpus="full")


def test_qrels_tsv_missing_header_column(tmp_path):
    path = tmp_path / "test.tsv"
    write_tsv(path, ["query-id\tcorpus-id", "1\t10"])
    with pytest.raises(ValueError, match=rf"{path}:1: header .* lacks \['score'\]"):
        data.read_qrels_tsv(path)


@pytest.mark.parametrize("bad_score", ["1.5", "x", ""])
def test_qrels_tsv_non_integer_score(tmp_path, bad_score):
    path = tmp_path / "test.tsv"
    write_tsv(path, ["query-id\tcorpus-id\tscore", "1\t10\t1", f"2\t20\t{bad_score}"])
    with pytest.raises(ValueError, match=rf"{path}:3: score '{bad_score}' is not an integer"):
        data.read_qrels_tsv(path)


def test_qrels_tsv_short_row(tmp_path):
    path = tmp_path / "test.tsv"
    write_tsv(path, ["query-id\tcorpus-id\tscore", "1\t10"])
    with pytest.raises(ValueError, match=rf"{path}:2: 2 column"):
        data.read_qrels_tsv(path)


def test_missing_local_file_names_the_path(tmp_path, monkeypatch, no_hub):
    monkeypatch.setenv("EMBEDLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(MissingOfflineAsset) as err:
        data.load_stsb("test")
    assert str(tmp_path / "stsb" / "test.jsonl") in str(err.value)
    (tmp_path / "scifact").mkdir()
    write_jsonl(tmp_path / "scifact/corpus.jsonl", [{"_id": "1", "title": "", "text": "x"}])
    write_jsonl(tmp_path / "scifact/queries.jsonl", [{"_id": "1", "text": "q"}])
    with pytest.raises(MissingOfflineAsset) as err:
        data.load_scifact("train")
    assert str(tmp_path / "scifact" / "qrels" / "train.tsv") in str(err.value)


@pytest.mark.parametrize(
    ("call", "name", "split"),
    [
        (lambda: data.load_stsb("test"), "stsb", "test"),
        (lambda: data.load_sick("validation"), "sick", "validation"),
        (lambda: data.load_scifact("test"), "scifact", "test"),
    ],
)
def test_offline_without_data_dir_fails_fast(monkeypatch, no_hub, call, name, split):
    monkeypatch.delenv("EMBEDLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("EMBEDLAB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(MissingOfflineAsset) as err:
        call()
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert f"({name}) split {split!r}" in message
    assert "EMBEDLAB_DATA_DIR" in message and "shared/data" in message
