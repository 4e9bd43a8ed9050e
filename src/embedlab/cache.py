"""Encoding with an on-disk embedding cache that never returns wrong vectors.

Re-running a notebook should not re-encode 5,000 abstracts. :func:`encode` stores
each result under ``$EMBEDLAB_HOME/embeddings/<key>.npy`` keyed by everything that
changes the output (:func:`encode_settings`): the model's weights (a hash of its
parameters, so a fine-tuned model never reuses its base model's entries), its module
configuration (pooling, normalisation), the *effective* prompt (``default_prompt_name``
included), ``truncate_dim``, ``normalize``, ``max_seq_length``, the tokenizer's
truncation and padding sides, a hash of the tokenizer, and a hash of the texts.

An entry is a ``.npy`` followed by a trailer holding the sha256 of the ``.npy`` bytes.
It is used only when the checksum matches and the array is 2-D float32 of shape
(N texts, model D) and finite; anything else is a miss: the file is deleted and the
embeddings recomputed.

Writes are atomic: the bytes go to a temporary file in the same folder, are flushed
to disk, then ``os.replace``-d into place. A crash or kill mid-write leaves at most a
stray ``.tmp-*`` file, never a truncated entry; temp files older than an hour are swept
on the next write. Two processes writing the same key both write complete files; the
last rename wins.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from embedlab.config import home_dir

PROGRESS_MIN_TEXTS = 256  # below this an encode takes a second or two: no bar
TRAILER = b"EMBLAB-SHA256:"  # + 32-byte digest of the .npy bytes before it
STALE_TMP_SECONDS = 3600  # a temp file this old belongs to a killed writer


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


def tokenizer_settings(model) -> dict[str, object]:
    """The tokenizer facts that change embeddings: sides, special tokens, and a hash.

    The hash covers the tokenizer's full serialisation (vocabulary, normaliser,
    pre-tokenizer, post-processor) without its call state (:func:`_stable_serial`). For
    E5's 250k vocabulary that JSON is 7.6 MB: hashing the raw serialisation takes ~70 ms,
    the call-state-free rewrite ~1 s, so the rewrite's hash is memoised per raw hash
    (:func:`_serial_hash`). Models without a tokenizer (stand-ins in tests) give ``{}``.
    """
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return {}
    backend = getattr(tok, "backend_tokenizer", tok)  # a tokenizers.Tokenizer is its own
    digest = _serial_hash(backend.to_str()) if hasattr(backend, "to_str") else _blake(repr(tok))
    return {
        "class": type(tok).__name__,
        "truncation_side": getattr(tok, "truncation_side", None),
        "padding_side": getattr(tok, "padding_side", None),
        "specials": str(getattr(tok, "special_tokens_map", None)),
        "hash": digest,
    }


def _blake(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# raw serialisation's hash -> hash of its stable form; a tokenizer gives one raw form per
# call state (truncation length, padding), so a process holds a handful of entries
_STABLE_HASHES: dict[str, str] = {}


def _serial_hash(serial: str) -> str:
    """The hash of :func:`_stable_serial` of ``serial``, memoised by ``serial``'s own hash."""
    raw = _blake(serial)
    if raw not in _STABLE_HASHES:
        if len(_STABLE_HASHES) >= 256:
            _STABLE_HASHES.clear()
        _STABLE_HASHES[raw] = _blake(_stable_serial(serial))
    return _STABLE_HASHES[raw]


def _stable_serial(serial: str) -> str:
    """A fast tokenizer's JSON without its call state (``truncation``, ``padding``).

    Every ``tokenizer(...)`` call sets those two fields on the backend, so the raw JSON of
    a model that has encoded once differs from a fresh one's: keyed on it, the same
    model and texts would miss the cache. The settings they hold that matter
    (``max_seq_length``, the sides) are keyed separately in :func:`encode_settings`.
    """
    try:
        d = json.loads(serial)
    except ValueError:
        return serial
    if isinstance(d, dict):
        for call_state in ("truncation", "padding"):
            d.pop(call_state, None)
    return json.dumps(d, sort_keys=True)


def effective_prompt(model, prompt: str | None, prompt_name: str | None) -> str | None:
    """The prompt ``model.encode`` will prepend: a named one, the literal one, or the default.

    Raises:
        ValueError: ``prompt_name`` is not one of the model's prompts.
    """
    prompts = getattr(model, "prompts", None) or {}
    if prompt_name is None and prompt is not None:
        return prompt
    name = prompt_name if prompt_name is not None else getattr(model, "default_prompt_name", None)
    if name is None:
        return None
    if name not in prompts:
        raise ValueError(f"prompt_name={name!r} unknown; model has {sorted(prompts)}")
    return prompts[name]


def encode_settings(model, prompt: str | None, normalize: bool) -> dict[str, object]:
    """Every setting besides weights and texts that changes ``model.encode``'s output."""
    return {
        "prompt": prompt,
        "normalize": normalize,
        "max_seq_length": getattr(model, "max_seq_length", None),
        "truncate_dim": getattr(model, "truncate_dim", None),
        "tokenizer": tokenizer_settings(model),
    }


def cache_key(fingerprint: str, texts: Sequence[str], settings: dict[str, object]) -> str:
    """The cache key: a hash over the weights, the texts and :func:`encode_settings`."""
    parts = {"model": fingerprint, "texts": texts_hash(texts), "settings": settings}
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=20).hexdigest()


def _umask() -> int:
    """The process umask (os has no getter: set it and put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what a plain open(path, "w") creates
DIR_MODE = 0o777 & ~_umask()  # what a plain mkdir creates


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temp file next to ``path``, fsync, rename (all or nothing).

    The file gets :data:`FILE_MODE`, as if written in place: ``mkstemp`` makes it
    owner-only, which would lock other users out of a shared model mirror.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_folder(path: Path, fill: Callable[[Path], None]) -> bool:
    """Call ``fill(tmp)`` on a fresh temp folder next to ``path``, fsync, rename it to ``path``.

    The folder version of :func:`atomic_write` (e.g. a saved model: several files that
    must appear together). Temp folders of killed writers (older than
    ``STALE_TMP_SECONDS``) are swept first; this call's temp folder is removed whatever
    fails. Returns: True when this call put the folder in place, False when ``path``
    already existed (another writer finished first: theirs is kept).
    """
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temp_files(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp's owner-only 0700 would become the folder's mode
        fill(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())  # the bytes reach the disk before the name does
        try:
            os.replace(tmp, path)
        except OSError:  # ENOTEMPTY/EEXIST: a folder is already there
            return False
        return True
    finally:  # a failure, or a lost race, leaves no temp folder
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` as ``.npy`` via temp file + fsync + rename."""
    atomic_write(path, lambda f: np.save(f, array))


def save_entry(path: Path, array: np.ndarray) -> None:
    """Write a cache entry atomically: the ``.npy`` bytes, then ``TRAILER`` + their sha256."""

    def write(f: BinaryIO) -> None:
        buf = io.BytesIO()
        np.save(buf, array)
        payload = buf.getvalue()
        f.write(payload)
        f.write(TRAILER + hashlib.sha256(payload).digest())

    atomic_write(path, write)


def sweep_stale_temp_files(folder: Path, max_age: float = STALE_TMP_SECONDS) -> int:
    """Delete ``.tmp-*`` files/folders older than ``max_age`` seconds (killed writers).

    Younger ones may belong to a writer that is still running, so they are kept.
    Returns: the number removed.
    """
    import shutil

    removed, now = 0, time.time()
    for stale in folder.glob(".tmp-*") if folder.is_dir() else ():
        try:
            if now - stale.lstat().st_mtime <= max_age:
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            removed += 1
        except FileNotFoundError:  # another process swept it first
            continue
    return removed


def read_entry(path: Path) -> np.ndarray | None:
    """The array of a cache entry whose checksum matches, else None (absent or corrupt)."""
    got = _read_file(path)
    return None if got is None else _parse_entry(got[0])


def _read_file(path: Path) -> tuple[bytes, int] | None:
    """(the file's bytes, its inode), or None when there is no such file."""
    try:
        with path.open("rb") as f:
            return f.read(), os.fstat(f.fileno()).st_ino
    except (FileNotFoundError, IsADirectoryError):
        return None


def _parse_entry(data: bytes) -> np.ndarray | None:
    """The array in an entry's bytes if its trailer's sha256 matches, else None."""
    cut = len(data) - len(TRAILER) - 32
    if cut <= 0 or data[cut : cut + len(TRAILER)] != TRAILER:
        return None
    payload = data[:cut]
    if hashlib.sha256(payload).digest() != data[cut + len(TRAILER) :]:
        return None
    try:
        return np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


def entry_problem(array: np.ndarray | None, n: int | None, dim: int | None) -> str | None:
    """Why a cached array cannot stand for n embeddings of dimension ``dim`` (None: it can)."""
    if array is None:
        return "missing, unreadable or checksum mismatch"
    if array.ndim != 2:
        return f"{array.ndim}-D, expected 2-D"
    if array.dtype != np.float32:
        return f"dtype {array.dtype}, expected float32"
    if (n is not None and array.shape[0] != n) or (dim is not None and array.shape[1] != dim):
        return f"shape {array.shape}, expected ({n or 'N'}, {dim or 'D'})"
    if not np.isfinite(array).all():
        return "holds NaN or inf"
    return None


def load_cached(path: Path, n: int | None = None, dim: int | None = None) -> np.ndarray | None:
    """A valid cached (n, dim) float32 array, or None; an invalid entry is deleted.

    Valid means: checksum matches, 2-D float32, ``n`` rows (when given), ``dim``
    columns (when given), all finite. Only the file that was read is deleted, never an
    entry another process renamed into place meanwhile.
    """
    got = _read_file(path)
    if got is None:
        return None
    array = _parse_entry(got[0])
    if entry_problem(array, n, dim) is None:
        return array
    _unlink_if_same(path, got[1])
    return None


def _unlink_if_same(path: Path, inode: int) -> None:
    """Delete ``path`` unless another process has meanwhile renamed a new entry onto it."""
    try:
        if path.stat().st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass


def embedding_dim(model) -> int | None:
    """The model's output dimension after ``truncate_dim``, or None if it does not say."""
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        get = getattr(model, name, None)
        if callable(get):
            dim = get()
            return int(dim) if isinstance(dim, int) else None
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
            configured prompts (e.g. E5's ``"query"`` -> ``"query: "``); neither means
            the model's ``default_prompt_name`` (if any), as ``model.encode`` does.
        normalize: L2-normalise rows, so dot product = cosine.
        fingerprint: :func:`model_fingerprint` of ``model`` if the caller already has it
            (saves re-hashing the weights on every call while they cannot change).

    Returns:
        (N, D) float32 array; row i embeds texts[i].
    Raises:
        TypeError: ``texts`` is a single string.
        ValueError: no texts, a non-str text, an unknown prompt name, or non-finite output.
    Production equivalent: ``model.encode(texts, prompt_name=..., normalize_embeddings=...)``.
    """
    texts = _check_texts(texts)
    prompt = effective_prompt(model, prompt, prompt_name)
    fingerprint = fingerprint or model_fingerprint(model)
    key = cache_key(fingerprint, texts, encode_settings(model, prompt, normalize))
    path, dim = cache_dir() / f"{key}.npy", embedding_dim(model)
    if use_cache and (hit := load_cached(path, len(texts), dim)) is not None:
        return hit
    show = len(texts) >= PROGRESS_MIN_TEXTS if show_progress_bar is None else show_progress_bar
    emb = model.encode(
        texts,
        prompt=prompt,
        batch_size=batch_size,
        normalize_embeddings=normalize,
        convert_to_numpy=True,
        show_progress_bar=show,
    )
    emb = np.asarray(emb).astype(np.float32)
    if not np.isfinite(emb).all():
        raise ValueError("the model produced NaN/inf embeddings; refusing to cache them")
    if (problem := entry_problem(emb, len(texts), dim)) is not None:
        raise ValueError(f"the model returned embeddings that are {problem}")
    if use_cache:
        sweep_stale_temp_files(cache_dir())
        save_entry(path, emb)
    return emb


def _check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or a TypeError/ValueError saying what was expected."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"encode() got a single {type(texts).__name__} ({texts[:40]!r}); it would encode "
            "each character: pass a list of strings, e.g. [text]"
        )
    texts = list(texts)
    if not texts:
        raise ValueError("encode() got no texts: pass a non-empty list of strings")
    bad = next((t for t in texts if not isinstance(t, str)), "ok")
    if bad != "ok":
        raise ValueError(f"encode() expects a list of str; got a {type(bad).__name__} ({bad!r})")
    return texts
