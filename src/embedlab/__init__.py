"""embedlab: helpers for the text-embeddings course.

Importing the package applies offline mode (``EMBEDLAB_OFFLINE=1``) before anything
imports ``huggingface_hub``, which reads its settings at import time.
"""

from __future__ import annotations

import logging

from embedlab.config import apply_offline_env as _apply_offline_env

_apply_offline_env()

from embedlab.config import is_offline, profile, seed_everything  # noqa: E402

__version__ = "0.1.0"
__all__ = ["__version__", "is_offline", "profile", "run_line", "seed_everything", "setup"]


def setup(seed: int = 0) -> str:
    """Seed everything, apply the offline settings and print the profile line.

    Returns:
        The printed line, e.g. ``embedlab 0.1.0 | profile fast | offline``.
    """
    _apply_offline_env()
    seed_everything(seed)
    _quiet_libraries()
    mode = (
        "offline (local mirror + EMBEDLAB_DATA_DIR)"
        if is_offline()
        else "online (Hugging Face Hub)"
    )
    line = f"embedlab {__version__} | profile {profile().name} | {mode} | seed {seed}"
    print(line)
    return line


def run_line(models: list[str], data: dict[str, int]) -> str:
    """Print the one-line summary at the top of a notebook: profile, models, data sizes.

    Models whose offline weights are dequantized (see the mirror's manifest) are marked
    so, because their scores may differ slightly from the published full-precision ones.

    Args:
        models: canonical Hub ids, e.g. ``["sentence-transformers/all-MiniLM-L6-v2"]``.
        data: name -> number of rows, e.g. ``{"STS-B test": 1379}``.
    """
    from embedlab.offline import weights_note

    names = ", ".join(f"{m}{weights_note(m)}" for m in models)
    sizes = ", ".join(f"{k} {v:,}" for k, v in data.items())
    line = f"[{profile().name}] models: {names} | data: {sizes}"
    print(line)
    return line


class _DropOfflineHubNotice(logging.Filter):
    """Offline, huggingface_hub warns that it "could not reach the Hub" on every model load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (is_offline() and "Could not reach the Hub" in record.getMessage())


def _quiet_libraries() -> None:
    """Keep notebook output to what teaches: no weight-loading bars, no offline notices."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    for name in ("huggingface_hub.hf_api",):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropOfflineHubNotice) for f in logger.filters):
            logger.addFilter(_DropOfflineHubNotice())


def report_claims(notebook: str, rows: list[dict]) -> None:
    """Print a notebook's reproduced claims and attach them to its output as JSON.

    Each row: ``{"claim": str, "source": str, "published": float | None,
    "measured": float, "setting": str}``. ``scripts/notebooks.py readme`` collects
    these outputs from the executed notebooks into README's "Reproduced claims" table,
    so the README never holds a number that a notebook did not produce.
    """
    from IPython.display import display

    required = {"claim", "source", "published", "measured", "setting"}
    for row in rows:
        if set(row) != required:
            raise ValueError(f"claim row keys {sorted(row)} must be exactly {sorted(required)}")
    clean = [{**r, "measured": round(float(r["measured"]), 2)} for r in rows]
    for r in clean:
        pub = "" if r["published"] is None else f" (published {r['published']})"
        print(f"{r['claim']}: {r['measured']}{pub} [{r['setting']}]")
    display(
        {"application/json": {"embedlab_claims": {"notebook": notebook, "rows": clean}}}, raw=True
    )
