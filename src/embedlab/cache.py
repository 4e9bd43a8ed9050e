"""Encoding with an on-disk embedding cache.

Re-running a notebook should not re-encode 5,000 abstracts. :func:`encode` stores
each result as ``.npy`` under ``$EMBEDLAB_HOME/embeddings/`` keyed by everything that
changes the output: the model's weights (a hash of its parameters, so a fine-tuned
model never reuses its base model's entries), its module configuration (pooling,
normalisation), the prompt, ``normalize``, ``max_seq_length`` and a hash of the texts.

Writes are atomic: the array goes to a temporary file in the same folder, is flushed
to disk, then ``os.replace``-d into place. A crash or kill mid-write leaves at most a
stray ``.tmp-*`` file, never a truncated entry that a later run would load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedlab.config import home_dir

PROGRESS_MIN_TEXTS = 256  # below this an encode takes a second or two: no bar


def cache_dir() -> Path:
    """Folder of cached embeddings (``$EMBEDLAB_HOME/embeddings``)."""
    return home_dir() / "embeddings"


def model_fingerprint(model) -> str:
    """Hash of a SentenceTransformer's parameters and module configuration.

    Cost: one pass over the weights (~0.1 s for MiniLM, ~0.5 s for E5 on 2 cores).
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(model).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_u8()).numpy().tobytes())
    return h.hexdigest()


def _u8():
    import torch

    return torch.uint8


def texts_hash(texts: Sequence[str]) -> str:
    """Order-sensitive hash of the texts (length-prefixed, so no separator ambiguity)."""
    h = hashlib.blake2b(digest_size=16)
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cache_key(
    fingerprint: str,
    texts: Sequence[str],
    prompt: str | None,
    normalize: bool,
    max_seq_length: int | None,
) -> str:
    """The cache key: a hash over every input that changes the embeddings."""
    parts = {
        "model": fingerprint,
        "texts": texts_hash(texts),
        "prompt": prompt,
        "normalize": normalize,
        "max_seq_length": max_seq_length,
    }
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=20).hexdigest()


def atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via temp file + fsync + rename (all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached(path: Path) -> np.ndarray | None:
    """The cached array, or None when absent (a file that fails to parse is a miss)."""
    if not path.exists():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


def encode(
    model,
    texts: Sequence[str],
    *,
    prompt: str | None = None,
    prompt_name: str | None = None,
    normalize: bool = True,
    batch_size: int = 32,
    use_cache: bool = True,
    show_progress_bar: bool | None = None,
    fingerprint: str | None = None,
) -> np.ndarray:
    """Encode texts with a SentenceTransformer, reusing cached results.

    Args:
        model: a ``sentence_transformers.SentenceTransformer``.
        texts: N strings (non-empty list; strings may be empty).
        prompt / prompt_name: a literal prefix, or the name of one of the model's
            configured prompts (e.g. E5's ``"query"`` -> ``"query: "``).
        normalize: L2-normalise rows, so dot product = cosine.
        fingerprint: :func:`model_fingerprint` of ``model`` if the caller already has it
            (saves re-hashing the weights on every call while they cannot change).

    Returns:
        (N, D) float32 array; row i embeds texts[i].
    Production equivalent: ``model.encode(texts, prompt_name=..., normalize_embeddings=...)``.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("encode() got no texts: pass a non-empty list of strings")
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("encode() expects a list of str")
    if prompt_name is not None:
        if prompt_name not in model.prompts:
            raise ValueError(
                f"prompt_name={prompt_name!r} unknown; model has {sorted(model.prompts)}"
            )
        prompt = model.prompts[prompt_name]
    fingerprint = fingerprint or model_fingerprint(model)
    key = cache_key(fingerprint, texts, prompt, normalize, model.max_seq_length)
    path = cache_dir() / f"{key}.npy"
    if use_cache and (hit := load_cached(path)) is not None and hit.shape[0] == len(texts):
        return hit
    show = len(texts) >= PROGRESS_MIN_TEXTS if show_progress_bar is None else show_progress_bar
    emb = model.encode(
        texts,
        prompt=prompt,
        batch_size=batch_size,
        normalize_embeddings=normalize,
        convert_to_numpy=True,
        show_progress_bar=show,
    ).astype(np.float32)
    if not np.isfinite(emb).all():
        raise ValueError("the model produced NaN/inf embeddings; refusing to cache them")
    if use_cache:
        atomic_save(path, emb)
    return emb
