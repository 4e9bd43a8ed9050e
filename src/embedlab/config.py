"""Run-time settings: profile, offline mode, data and cache locations.

Everything is read from environment variables so that a notebook, a test and CI
see the same configuration:

- ``EMBEDLAB_PROFILE``   ``fast`` | ``full``. Unset: ``full`` with a CUDA GPU, else ``fast``.
- ``EMBEDLAB_OFFLINE``   ``1`` switches offline mode on (models from the local mirror,
                         data from ``EMBEDLAB_DATA_DIR``, no network retries).
- ``EMBEDLAB_DATA_DIR``  a folder laid out like ``shared/data`` (STS-B, SICK, SciFact, SNLI).
- ``EMBEDLAB_HOME``      where embedlab keeps its caches (default ``~/.cache/embedlab``).
- ``EMBEDLAB_MIRROR_DIR`` the offline model mirror (default ``$EMBEDLAB_HOME/hf-mirror``).
- ``EMBEDLAB_ARTIFACTS_DIR`` what ``make artifacts`` trains (default ``$EMBEDLAB_HOME/models``).

An empty variable counts as unset (never as "the current directory"), and relative
paths are made absolute, so the Hugging Face paths derived from them are too.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("fast", "full")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Profile:
    """Budgets that differ between the fast (CPU, CI) and full (GPU, paper) runs.

    Package code reads these fields, never the profile's name.

    - ``max_seq_length``: tokens kept per text (None: the model's own limit).
    - ``scifact_distractors``: seeded non-relevant abstracts kept next to every test
      query's relevant ones; ``None`` means the whole 5,183-document corpus.
    - ``train_steps_scale``: the share of a full-profile step budget that is run
      (:func:`embedlab.train.scaled_steps`).
    - ``training_start``: what the training lessons fine-tune: ``"static"`` (MiniLM's
      input embeddings, averaged: trains in seconds on a CPU) or a Hub model id.
    - ``benchmark_rows``: (task, rows) caps of the MTEB-style benchmark's seeded samples;
      tasks not listed run on all their rows.
    - ``doc_tokens``: tokens read per long document (SciFact abstracts) where a notebook
      caps them below ``max_seq_length`` to fit its budget (None: no extra cap). One value,
      so notebooks that encode the same abstracts share the embedding cache.
    """

    name: str
    max_seq_length: int | None
    scifact_distractors: int | None
    train_steps_scale: float
    training_start: str = "static"
    benchmark_rows: tuple[tuple[str, int], ...] = ()
    doc_tokens: int | None = None

    def benchmark_cap(self, task: str) -> int | None:
        """Rows of benchmark task ``task`` in this profile's seeded sample (None: all)."""
        return dict(self.benchmark_rows).get(task)


# fast caps keep notebook 09's four-model leaderboard near one minute on 2 cores
# (SciFact: claims, with their docs and as many distractors)
_FAST_BENCHMARK_ROWS = (
    ("STS-B", 200),
    ("SICK-R", 200),
    ("SciFact", 50),
    ("SICK-pairs", 200),
    ("SNLI-pairs", 200),
    ("STS-B-genre", 400),
    ("STS-B-genre-clusters", 200),
)
FAST = Profile(
    "fast",
    max_seq_length=256,
    scifact_distractors=1000,
    train_steps_scale=0.1,
    training_start="static",
    benchmark_rows=_FAST_BENCHMARK_ROWS,
    doc_tokens=128,
)
FULL = Profile(
    "full",
    max_seq_length=None,
    scifact_distractors=None,
    train_steps_scale=1.0,
    training_start="google-bert/bert-base-uncased",  # SBERT's own start; needs a GPU
)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def profile() -> Profile:
    """The active profile from ``EMBEDLAB_PROFILE`` (or the GPU default).

    Raises:
        ValueError: the variable holds something other than ``fast`` or ``full``.
    """
    raw = os.environ.get("EMBEDLAB_PROFILE", "").strip().lower()
    if not raw:
        return FULL if _cuda_available() else FAST
    if raw not in PROFILES:
        raise ValueError(f"EMBEDLAB_PROFILE={raw!r} is not a profile; expected one of {PROFILES}")
    return FAST if raw == "fast" else FULL


def is_offline() -> bool:
    """True when offline mode is switched on with ``EMBEDLAB_OFFLINE=1``."""
    return os.environ.get("EMBEDLAB_OFFLINE", "").strip().lower() in _TRUE


def env_path(name: str) -> Path | None:
    """The folder named by environment variable ``name``, absolute; ``None`` when unset.

    An empty or blank value counts as unset: ``Path("")`` would mean "the current
    directory", so ``EMBEDLAB_HOME=""`` would scatter caches wherever a notebook runs.
    """
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser().absolute() if raw else None


def home_dir() -> Path:
    """Root of embedlab's caches (embeddings, trained models, the model mirror)."""
    return env_path("EMBEDLAB_HOME") or Path.home() / ".cache" / "embedlab"


def mirror_dir() -> Path:
    """The offline model mirror: a Hugging Face home whose ``hub/`` holds the models."""
    return env_path("EMBEDLAB_MIRROR_DIR") or home_dir() / "hf-mirror"


def artifacts_dir() -> Path:
    """Where built artifacts (the trained re-ranker, pair-task comparisons) live.

    ``make artifacts`` fills it once; notebooks load from it and build what is missing
    themselves (slowly).
    """
    return env_path("EMBEDLAB_ARTIFACTS_DIR") or home_dir() / "models"


def data_dir() -> Path | None:
    """The local dataset folder from ``EMBEDLAB_DATA_DIR``, or ``None`` (use the Hub)."""
    return env_path("EMBEDLAB_DATA_DIR")


def apply_offline_env() -> None:
    """Point the Hugging Face libraries at the mirror and forbid network access.

    Must run before ``huggingface_hub`` is imported, because it reads these variables
    at import time; ``embedlab/__init__.py`` calls it first thing. If the library was
    imported earlier anyway, its constants are patched as well.
    """
    if not is_offline():
        return
    mirror = mirror_dir()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(mirror)
    os.environ["HF_HUB_CACHE"] = str(mirror / "hub")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
        constants.HF_HOME = str(mirror)
        constants.HF_HUB_CACHE = str(mirror / "hub")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic ops."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    except ImportError:
        pass


class MissingOfflineAsset(FileNotFoundError):
    """An offline-mode model or dataset is not in the local mirror.

    The message names the missing asset and says how to provide it; raised before any
    network access is attempted, so it arrives in well under a second.
    """
