"""Evaluation and training data: STS-B, SICK-R, SICK, SNLI and SciFact (BEIR layout).

Every loader returns the same columns and types whether it reads the local copy or
the Hugging Face Hub:

- ``EMBEDLAB_DATA_DIR`` set: read ``<dir>/<folder>/<split>.jsonl`` (and SciFact's
  ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) straight into memory;
  nothing is written to the Hugging Face cache and no network is touched.
- not set, online: ``datasets.load_dataset`` on the canonical Hub id, then the Hub's
  columns are renamed, selected and cast to ours.
- not set, offline (``EMBEDLAB_OFFLINE=1``): :class:`MissingOfflineAsset` at once.

Bad input (unknown dataset, split or corpus mode, malformed qrels) raises
:class:`ValueError` saying what was wrong and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, Features, Value

from embedlab.common import Qrels, check_qrels
from embedlab.config import FAST, MissingOfflineAsset, data_dir, is_offline, profile

__all__ = [
    "DATASETS",
    "NLI_LABEL",
    "Beir",
    "DatasetSpec",
    "available",
    "check_qrels",
    "check_split",
    "load_scifact",
    "load_sick",
    "load_sickr",
    "load_snli",
    "load_stsb",
    "read_qrels_tsv",
    "subset_doc_ids",
]

#: SICK and SNLI share the label order of the Hub's ClassLabel (0, 1, 2).
NLI_LABEL = ClassLabel(names=["entailment", "neutral", "contradiction"])
_TEXT, _FLOAT = Value("string"), Value("float64")

CORPUS_MODES = ("auto", "full", "subset")
QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry: where a dataset lives on the Hub and in the local folder.

    ``score_range`` is checked on every load, so a Hub dataset that changed its scale
    (e.g. STS-B scaled to 0-1) fails loudly instead of skewing results.
    """

    name: str
    title: str
    hub_id: str
    hub_config: str | None
    hub_revision: str | None
    folder: str
    splits: tuple[str, ...]
    features: Features | None
    score_range: tuple[float, float] | None = None


# Hub revisions: the ones MTEB pins for the same tasks (embeddings-benchmark/mteb,
# STSBenchmarkSTS, SickrSTS, SciFactRetrieval task metadata), so scores are comparable
# with the published leaderboard. RobZamp/sick's main branch still holds a loading
# script (sick.py), which datasets>=4 refuses; its auto-converted Parquet branch
# "refs/convert/parquet" holds the same rows.
DATASETS: dict[str, DatasetSpec] = {
    "stsb": DatasetSpec(
        "stsb",
        "STS Benchmark",
        "mteb/stsbenchmark-sts",
        None,
        "b0fddb56ed78048fa8b90373c8a3cfc37b684831",
        "stsb",
        ("train", "validation", "test"),
        Features({"sentence1": _TEXT, "sentence2": _TEXT, "score": _FLOAT, "genre": _TEXT}),
        (0.0, 5.0),
    ),
    "sickr": DatasetSpec(
        "sickr",
        "SICK-R (MTEB, 9,927 pairs)",
        "mteb/sickr-sts",
        None,
        "20a6d6f312dd54037fe07a32d58e5e168867909d",
        "sickr",
        ("test",),
        Features({"sentence1": _TEXT, "sentence2": _TEXT, "score": _FLOAT}),
        (1.0, 5.0),
    ),
    "sick": DatasetSpec(
        "sick",
        "SICK (SemEval-2014 splits)",
        "RobZamp/sick",
        None,
        "refs/convert/parquet",
        "sick",
        ("train", "validation", "test"),
        Features({"sentence1": _TEXT, "sentence2": _TEXT, "label": NLI_LABEL, "score": _FLOAT}),
        (1.0, 5.0),
    ),
    "snli": DatasetSpec(
        "snli",
        "SNLI (3-label rows)",
        "stanfordnlp/snli",
        "plain_text",
        None,
        "snli",
        ("validation", "test"),
        Features({"premise": _TEXT, "hypothesis": _TEXT, "label": NLI_LABEL}),
    ),
    "scifact": DatasetSpec(
        "scifact",
        "SciFact (BEIR)",
        "mteb/scifact",
        "default",  # qrels; the corpus and queries are configs "corpus" and "queries"
        "d56462d0e63a25450459c4f213e49ffdb866f7f9",
        "scifact",
        ("train", "test"),
        None,
    ),
}


def available() -> dict[str, tuple[str, ...]]:
    """Dataset name -> its valid splits, e.g. ``{"stsb": ("train", "validation", "test"), ...}``."""
    return {name: spec.splits for name, spec in DATASETS.items()}


def check_split(name: str, split: str) -> DatasetSpec:
    """Return the registry entry of ``name`` after checking that ``split`` exists.

    Raises:
        ValueError: unknown dataset name or split; the message lists the valid ones.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    if split not in spec.splits:
        raise ValueError(
            f"unknown split {split!r} for {name} ({spec.title}); valid splits: {list(spec.splits)}"
        )
    return spec


# ---------------------------------------------------------------- local / Hub plumbing


def _local_file(spec: DatasetSpec, split: str, relative: str) -> Path | None:
    """The local file for ``spec``/``split``, or ``None`` when the Hub should be used.

    Raises:
        MissingOfflineAsset: offline without ``EMBEDLAB_DATA_DIR``, or the file is missing.
    """
    root = data_dir()
    if root is None:
        if is_offline():
            raise MissingOfflineAsset(
                f"{spec.title} ({spec.name}) split {split!r} is not available offline: "
                "EMBEDLAB_OFFLINE=1 but EMBEDLAB_DATA_DIR is not set. Set EMBEDLAB_DATA_DIR "
                f"to a folder laid out like shared/data (with {spec.folder}/{relative}), "
                f"or run online to load {spec.hub_id} from the Hugging Face Hub."
            )
        return None
    path = root / spec.folder / relative
    if not path.is_file():
        raise MissingOfflineAsset(
            f"{spec.title} ({spec.name}) split {split!r}: missing file {path}. "
            f"EMBEDLAB_DATA_DIR={root} must be laid out like shared/data "
            f"({spec.folder}/{relative})."
        )
    verify_checksum(root, path)
    return path


SUMS_FILE = "SHA256SUMS"
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256


def verify_checksum(root: Path, path: Path) -> None:
    """Check ``path`` against ``root/SHA256SUMS`` (``sha256sum`` format) when there is one.

    A file the list does not name is not checked. Hashes are memoised per process by
    (path, mtime, size).

    Raises:
        ValueError: the file's sha256 differs from the listed one (edited or corrupt).
    """
    sums = root / SUMS_FILE
    if not sums.is_file():
        return
    rel = path.relative_to(root).as_posix()
    expected = _read_sums(sums).get(rel)
    if expected is None:
        return
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _VERIFIED:
        _VERIFIED[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    if _VERIFIED[key] != expected:
        raise ValueError(
            f"{path}: sha256 {_VERIFIED[key][:16]}... does not match {sums} "
            f"({expected[:16]}...); the file was edited or is corrupt: restore the original"
        )


def _read_sums(sums: Path) -> dict[str, str]:
    """``SHA256SUMS`` lines ``<hex>  <relative path>`` as {path: hex}."""
    out = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            out[name.strip().lstrip("*")] = digest.lower()
    return out


def _read_jsonl(path: Path, columns: Collection[str]) -> dict[str, list[Any]]:
    """Read the given fields of a JSON Lines file into columns (extra fields are ignored).

    Raises:
        ValueError: a line is not JSON or lacks a field; the message names file and line.
    """
    out: dict[str, list[Any]] = {c: [] for c in columns}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: a JSON {type(row).__name__}; expected an object")
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(
                f"{path}:{lineno}: missing field(s) {missing}; expected {list(columns)}"
            )
        for c in columns:
            out[c].append(row[c])
    if not out[next(iter(columns))]:
        raise ValueError(f"{path} holds no rows; expected JSON Lines with fields {list(columns)}")
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file; bad bytes raise naming file and line."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path}:{lineno}: not UTF-8 (byte {raw[exc.start]:#04x} at column "
                    f"{exc.start + 1}); expected UTF-8 text"
                ) from None


def _check_columns(cols: dict[str, list[Any]], spec: DatasetSpec, path: Path) -> dict:
    """Validate local values against ``spec.features``; SNLI's unlabelled rows (-1) dropped.

    Raises:
        ValueError: a null or non-string text, a non-numeric score or an unknown label,
            naming the file, the row and what was expected.
    """
    assert spec.features is not None
    if spec.name == "snli":  # as the Hub path does: -1 = no gold label
        keep = [i for i, label in enumerate(cols["label"]) if label != -1]
        cols = {c: [v[i] for i in keep] for c, v in cols.items()}
    for name, feature in spec.features.items():
        for row, value in enumerate(cols[name], 1):
            problem = _value_problem(value, feature)
            if problem:
                raise ValueError(f"{path}: row {row}, field {name!r} is {value!r}; {problem}")
    return cols


def _value_problem(value: Any, feature: Any) -> str | None:
    """What is wrong with one local value for its feature, or None."""
    if isinstance(feature, ClassLabel):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (
            None
            if ok and 0 <= value < feature.num_classes
            else (f"expected a label id 0..{feature.num_classes - 1} ({', '.join(feature.names)})")
        )
    if feature.dtype == "string":
        return None if isinstance(value, str) else "expected a string (null text is not allowed)"
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return None if numeric and math.isfinite(value) else "expected a finite number"


def _hub_load(spec: DatasetSpec, split: str, config: str | None = None) -> Dataset:
    """``datasets.load_dataset`` for one split of ``spec`` at its pinned revision."""
    return datasets.load_dataset(
        spec.hub_id, config or spec.hub_config, split=split, revision=spec.hub_revision
    )


def _conform(ds: Dataset, spec: DatasetSpec, renames: Mapping[str, str] | None = None) -> Dataset:
    """Rename, select and cast Hub columns to ``spec.features`` (in that column order).

    Raises:
        ValueError: the Hub dataset lacks a column we need (its schema changed).
    """
    assert spec.features is not None
    for old, new in (renames or {}).items():
        if old in ds.column_names:
            ds = ds.rename_column(old, new)
    missing = [c for c in spec.features if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{spec.hub_id} has no column(s) {missing} (after renaming {dict(renames or {})}); "
            f"found {ds.column_names}. Its schema may have changed."
        )
    ds = ds.select_columns(list(spec.features))
    return ds if ds.features == spec.features else ds.cast(spec.features)


def _check_scores(ds: Dataset, spec: DatasetSpec, origin: str) -> Dataset:
    """Fail if ``score`` leaves ``spec.score_range`` (catches a rescaled Hub copy)."""
    if spec.score_range is None or len(ds) == 0:
        return ds
    lo, hi = spec.score_range
    stats = pc.min_max(ds.with_format("arrow")["score"]).as_py()  # honours select()
    if stats["min"] < lo or stats["max"] > hi:
        raise ValueError(
            f"{spec.name} scores from {origin} span {stats['min']}..{stats['max']}; "
            f"expected {lo}..{hi}"
        )
    return ds


def _load_table(name: str, split: str, hub_mapper: Callable[[Dataset], Dataset]) -> Dataset:
    """Shared body of the pair loaders: local JSON Lines, else Hub + ``hub_mapper``."""
    spec = check_split(name, split)
    assert spec.features is not None
    path = _local_file(spec, split, f"{split}.jsonl")
    if path is not None:
        cols = _check_columns(_read_jsonl(path, list(spec.features)), spec, path)
        ds = Dataset.from_dict(cols, features=spec.features)
        return _check_scores(ds, spec, str(path))
    ds = hub_mapper(_hub_load(spec, split))
    return _check_scores(ds, spec, spec.hub_id)


# ---------------------------------------------------------------- sentence-pair loaders


def _stsb_from_hub(ds: Dataset) -> Dataset:
    # mteb/stsbenchmark-sts rows: split, genre, dataset, year, sid, score (0-5 float),
    # sentence1, sentence2. Source: the dataset_info of MTEB's 500-row sample of it,
    # huggingface.co/datasets/mteb/llm-eval-stsbenchmark README; 0-5 range from MTEB's
    # STSBenchmarkSTS task (min_score 0, max_score 5). sentence-transformers/stsb was not
    # used: it has no genre and its score is rescaled to 0-1 (its dataset card).
    if "genre" not in ds.column_names:  # keep the contract if a revision drops it
        ds = ds.add_column("genre", ["unknown"] * len(ds))
    return _conform(ds, DATASETS["stsb"])


def load_stsb(split: str) -> Dataset:
    """STS Benchmark (Cer et al., 2017) sentence pairs with gold similarity.

    Returns:
        ``datasets.Dataset`` with ``sentence1``, ``sentence2`` (str), ``score`` (float64,
        0-5) and ``genre`` (str: ``main-news``, ``main-captions``, ``main-forum(s)`` as
        spelled in the original files); train 5,749, validation 1,500, test 1,379 rows.

    Production equivalent: ``datasets.load_dataset("mteb/stsbenchmark-sts", split=split)``.
    """
    return _load_table("stsb", split, _stsb_from_hub)


def _sickr_from_hub(ds: Dataset) -> Dataset:
    # mteb/sickr-sts: sentence1, sentence2, score (1-5), one "test" split (train and
    # validation were deleted as copies of test, hub discussion #1). Columns: MTEB's
    # AbsTaskSTS contract (sentence1: str, sentence2: str, score: float); range: SickrSTS
    # task (min_score 1, max_score 5).
    return _conform(ds, DATASETS["sickr"])


def load_sickr(split: str = "test") -> Dataset:
    """SICK relatedness as MTEB's SICK-R evaluates it (all 9,927 pairs in one split).

    Returns:
        ``datasets.Dataset`` with ``sentence1``, ``sentence2`` (str) and ``score``
        (float64, 1-5); 9,927 rows.

    Production equivalent: ``datasets.load_dataset("mteb/sickr-sts", split="test")``.
    """
    return _load_table("sickr", split, _sickr_from_hub)


def _sick_from_hub(ds: Dataset) -> Dataset:
    # RobZamp/sick (formerly "sick"): id, sentence_A, sentence_B, label ClassLabel
    # [0 entailment, 1 neutral, 2 contradiction], relatedness_score (float32), entailment_AB,
    # entailment_BA, sentence_{A,B}_original, sentence_{A,B}_dataset; train 4,439,
    # validation 495, test 4,906. Source: its README dataset_info / dataset_infos.json.
    renames = {"sentence_A": "sentence1", "sentence_B": "sentence2", "relatedness_score": "score"}
    return _conform(ds, DATASETS["sick"], renames)


def load_sick(split: str) -> Dataset:
    """SICK with its SemEval-2014 splits (Marelli et al., 2014): entailment and relatedness.

    Returns:
        ``datasets.Dataset`` with ``sentence1``, ``sentence2`` (str), ``label``
        (``NLI_LABEL`` ClassLabel, int 0 entailment / 1 neutral / 2 contradiction) and
        ``score`` (float64 relatedness, 1-5); train 4,439, validation 495 (SemEval
        "TRIAL"), test 4,906 rows.

    Production equivalent:
    ``datasets.load_dataset("RobZamp/sick", revision="refs/convert/parquet", split=split)``.
    """
    return _load_table("sick", split, _sick_from_hub)


def _snli_from_hub(ds: Dataset) -> Dataset:
    # stanfordnlp/snli, config plain_text: premise, hypothesis, label ClassLabel
    # [0 entailment, 1 neutral, 2 contradiction]; rows without a gold label carry -1
    # (validation/test 10,000 rows each before dropping them). Source: its README
    # dataset_info and dataset card.
    labels = ds.with_format("arrow")["label"].to_pylist()
    ds = ds.select([i for i, label in enumerate(labels) if label != -1])
    return _conform(ds, DATASETS["snli"])


def load_snli(split: str) -> Dataset:
    """SNLI (Bowman et al., 2015) pairs that have a gold label.

    The local copy holds SentEval's *tokenized* text (``packages .`` with punctuation
    split off); the Hub's ``stanfordnlp/snli`` holds the raw text, so embeddings and
    scores differ slightly between the two. Rows labelled -1 on the Hub are dropped.

    Returns:
        ``datasets.Dataset`` with ``premise``, ``hypothesis`` (str) and ``label``
        (``NLI_LABEL`` ClassLabel, int 0/1/2); validation 9,842, test 9,824 rows.

    Production equivalent: ``datasets.load_dataset("stanfordnlp/snli", split=split)``
    followed by ``.filter(lambda r: r["label"] != -1)``.
    """
    return _load_table("snli", split, _snli_from_hub)


# ---------------------------------------------------------------- SciFact / BEIR


@dataclass(frozen=True)
class Beir:
    """A BEIR-style retrieval dataset held in memory.

    ``corpus`` maps doc id -> ``{"title", "text"}``, ``queries`` maps query id -> text
    (only queries judged in this split) and ``qrels`` maps query id -> {doc id: grade}.
    """

    name: str
    split: str
    corpus: dict[str, dict[str, str]] = field(repr=False)
    queries: dict[str, str] = field(repr=False)
    qrels: Qrels = field(repr=False)
    subset_note: str = ""

    @property
    def doc_ids(self) -> list[str]:
        """Corpus ids, sorted: the canonical order for embedding matrices."""
        return sorted(self.corpus)

    @property
    def query_ids(self) -> list[str]:
        """Query ids, sorted."""
        return sorted(self.queries)

    @property
    def doc_texts(self) -> list[str]:
        """``title + " " + text`` in ``doc_ids`` order (BEIR's SentenceBERT convention)."""
        return [f"{self.corpus[i]['title']} {self.corpus[i]['text']}".strip() for i in self.doc_ids]

    @property
    def n_pairs(self) -> int:
        """Number of judged (query, doc) pairs."""
        return sum(len(docs) for docs in self.qrels.values())

    @property
    def sizes(self) -> str:
        """One line, e.g. ``scifact test: 300 queries, 339 qrels, 5,183 docs``."""
        return (
            f"{self.name} {self.split}: {len(self.queries):,} queries, {self.n_pairs:,} qrels, "
            f"{len(self.corpus):,} docs"
        )


def read_qrels_tsv(path: Path) -> Qrels:
    """Read a BEIR qrels file (header ``query-id corpus-id score``, tab-separated).

    Production equivalent: the qrels part of BEIR's ``GenericDataLoader.load(split)``.

    Raises:
        ValueError: a missing header column, a short row or a non-integer score, naming
            the file and line.
    """
    qrels: Qrels = {}
    lines = _lines(Path(path))
    header = next(lines, (1, ""))[1].rstrip("\r\n").split("\t")
    missing = [c for c in QRELS_HEADER if c not in header]
    if missing:
        raise ValueError(
            f"{path}:1: header {header} lacks {missing}; expected {list(QRELS_HEADER)}"
        )
    q, d, s = (header.index(c) for c in QRELS_HEADER)
    for lineno, line in lines:
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) < len(header):
            raise ValueError(f"{path}:{lineno}: {len(cells)} column(s); expected {len(header)}")
        try:
            score = int(cells[s])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: score {cells[s]!r} is not an integer") from None
        qrels.setdefault(cells[q], {})[cells[d]] = score
    return qrels


def subset_doc_ids(
    doc_ids: Collection[str],
    qrels: Qrels,
    n_distractors: int,
    seed: int = 0,
) -> list[str]:
    """Every relevant doc of ``qrels`` plus a seeded sample of ``n_distractors`` others.

    The sample is ``random.Random(seed).sample`` over the *sorted* non-relevant ids, so
    the result depends only on the ids, the qrels and the seed. Returned sorted.

    Raises:
        ValueError: ``n_distractors`` is negative.
    """
    if n_distractors < 0:
        raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
    relevant = {d for docs in qrels.values() for d, score in docs.items() if score > 0}
    others = sorted(set(doc_ids) - relevant)
    sample = random.Random(seed).sample(others, min(n_distractors, len(others)))
    return sorted(relevant.union(sample))


def _scifact_local(spec: DatasetSpec, split: str) -> tuple[dict, dict, dict] | None:
    """SciFact from ``EMBEDLAB_DATA_DIR/scifact`` (BEIR files), or ``None`` for the Hub."""
    paths = [
        _local_file(spec, split, f) for f in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")
    ]
    if None in paths:
        return None
    corpus_path, queries_path, qrels_path = (p for p in paths if p is not None)
    corpus_cols = _read_jsonl(corpus_path, ("_id", "title", "text"))
    query_cols = _read_jsonl(queries_path, ("_id", "text"))
    corpus = {
        str(i): {"title": t, "text": x}
        for i, t, x in zip(
            corpus_cols["_id"], corpus_cols["title"], corpus_cols["text"], strict=True
        )
    }
    queries = {str(i): t for i, t in zip(query_cols["_id"], query_cols["text"], strict=True)}
    _check_texts(corpus_path, {f"{d} {k}": v for d, doc in corpus.items() for k, v in doc.items()})
    _check_texts(queries_path, queries)
    return corpus, queries, read_qrels_tsv(qrels_path)


def _check_texts(path: Path, texts: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first null or non-string text (it would become "None")."""
    bad = next((k for k, v in texts.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f'{path}: {bad!r} is {texts[bad]!r}; expected a string (use "" if empty)')


def _scifact_hub(spec: DatasetSpec, split: str) -> tuple[dict, dict, dict]:
    # mteb/scifact configs (its README dataset_info/configs): "corpus" (split "corpus":
    # _id, title, text; 5,183 rows), "queries" (split "queries": _id, text; 1,109 rows),
    # "default" = qrels (splits train 919 / test 339: query-id, corpus-id, score float64).
    corpus_ds = _hub_load(spec, "corpus", config="corpus")
    queries_ds = _hub_load(spec, "queries", config="queries")
    qrels_ds = _hub_load(spec, split)
    corpus = {str(r["_id"]): {"title": r["title"], "text": r["text"]} for r in corpus_ds}
    queries = {str(r["_id"]): r["text"] for r in queries_ds}
    qrels: Qrels = {}
    for n, r in enumerate(qrels_ds):
        if float(r["score"]) != int(r["score"]):
            raise ValueError(
                f"{spec.hub_id} qrels {split} row {n}: score {r['score']!r} is not integral"
            )
        qrels.setdefault(str(r["query-id"]), {})[str(r["corpus-id"])] = int(r["score"])
    return corpus, queries, qrels


def _resolve_corpus_mode(corpus: str) -> int | None:
    """Number of distractors for ``corpus`` (``None`` = full corpus)."""
    if corpus not in CORPUS_MODES:
        raise ValueError(f"unknown corpus mode {corpus!r}; expected one of {list(CORPUS_MODES)}")
    n = profile().scifact_distractors
    if corpus == "full" or (corpus == "auto" and n is None):
        return None
    return FAST.scifact_distractors if n is None else n  # "subset" under FULL: FAST's size


def load_scifact(split: str = "test", corpus: str = "auto") -> Beir:
    """SciFact claims retrieving abstracts, in BEIR layout (Wadden et al., 2020).

    ``corpus="full"``: all 5,183 abstracts. ``"subset"``: every doc relevant to a query
    of ``split`` plus ``profile().scifact_distractors`` seeded distractors (1,000 in the
    FAST profile; see :func:`subset_doc_ids`). ``"auto"``: subset when the profile sets
    a distractor count, else full.

    Returns:
        :class:`Beir` with ``corpus`` (doc id -> {"title", "text"}), ``queries`` (only
        those judged in ``split``: test 300, train 809), ``qrels`` (test 339 pairs,
        train 919) and ``subset_note``.

    Production equivalent: BEIR's ``GenericDataLoader(folder).load(split=split)``, or
    ``datasets.load_dataset("mteb/scifact", "corpus" | "queries" | "default")``.

    Raises:
        ValueError: unknown split or corpus mode, or inconsistent qrels.
    """
    spec = check_split("scifact", split)
    n_distractors = _resolve_corpus_mode(corpus)
    full, all_queries, qrels = _scifact_local(spec, split) or _scifact_hub(spec, split)
    check_qrels(qrels, corpus_ids=full)
    unknown = [q for q in qrels if q not in all_queries]
    if unknown:
        raise ValueError(
            f"{len(unknown)} judged query id(s) have no query text, e.g. {unknown[:5]}"
        )
    queries = {q: all_queries[q] for q in qrels}
    if n_distractors is None:
        note = f"full corpus: all {len(full):,} SciFact abstracts (comparable with MTEB/BEIR)"
        return Beir("scifact", split, full, queries, qrels, note)
    ids = subset_doc_ids(full, qrels, n_distractors)
    note = (
        f"subset corpus: {len(ids):,} of {len(full):,} abstracts (every relevant doc of the "
        f"{split} queries + {len(ids) - _n_relevant(qrels):,} distractors, random.Random(0)); "
        "retrieval scores on this subset are inflated vs the full corpus and are not "
        "comparable with published MTEB/BEIR figures"
    )
    return Beir("scifact", split, {i: full[i] for i in ids}, queries, qrels, note)


def _n_relevant(qrels: Qrels) -> int:
    return len({d for docs in qrels.values() for d, score in docs.items() if score > 0})
