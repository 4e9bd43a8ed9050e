"""What a model load needs from the offline mirror: find a model, check it, describe it.

Nothing here builds: no pip, no GGUF or Q4_0 decoding, no SentencePiece, so that
:func:`require_model` fails a missing model in well under a second. Building is
:mod:`embedlab.offline.builder`'s job; :mod:`embedlab.offline` describes the mirror.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from embedlab.cache import atomic_write
from embedlab.config import MissingOfflineAsset, home_dir, is_offline, mirror_dir

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DEQUANTIZED_NOTE = " (dequantized 4-bit offline build)"
VERIFIED = "verified-mirror-files.json"  # under home_dir(): sha256 memo by (mtime, size)

# The models the mirror can build; how, is embedlab.offline.builder.MIRROR.
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
E5_ID = "intfloat/multilingual-e5-small"
SMOLLM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MIRROR_IDS = (MINILM_ID, E5_ID, SMOLLM_ID)


def repo_folder(model_id: str) -> str:
    """The hub cache folder name of a model id (``models--ORG--NAME``)."""
    return "models--" + model_id.replace("/", "--")


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (temp file, fsync, rename: :func:`cache.atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON, atomically (:func:`write_text`)."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_manifest(dest: Path | None = None) -> dict:
    """The mirror's manifest (``{"format": 1, "models": {}}`` when there is none)."""
    path = (dest or mirror_dir()) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"format": MANIFEST_FORMAT, "models": {}}
    data.setdefault("models", {})
    return data


def snapshot_dir(dest: Path, model_id: str) -> Path | None:
    """The snapshot folder ``refs/main`` points at, if it exists and is not empty."""
    repo = dest / "hub" / repo_folder(model_id)
    try:
        rev = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    snap = repo / "snapshots" / rev
    return snap if snap.is_dir() and any(snap.iterdir()) else None


def weights_note(model_id: str) -> str:
    """A suffix for result lines: ``""`` for exact weights, or when online/no manifest.

    In offline mode a model that the mirror holds as dequantized weights gets
    ``" (dequantized 4-bit offline build)"``.
    """
    if not is_offline():
        return ""
    entry = read_manifest()["models"].get(model_id)
    return DEQUANTIZED_NOTE if entry and not entry.get("exact", True) else ""


def require_model(model_id: str) -> None:
    """In offline mode, fail fast and clearly when the mirror does not hold ``model_id``.

    A no-op online and for local folders. Imports nothing heavy, so a missing model
    fails in well under a second; call it before importing sentence-transformers.
    When the manifest lists the model, its files are checked (:func:`verify_snapshot`).

    Raises:
        MissingOfflineAsset: offline and the model is not in the mirror (or there is no
            mirror), or a file of it is missing, resized or altered; the message names
            the model (and file) and says how to provide it.
    """
    if not is_offline() or Path(model_id).expanduser().is_dir():
        return
    mirror = mirror_dir()
    snap = snapshot_dir(mirror, model_id)
    if snap is not None:
        entry = read_manifest(mirror)["models"].get(model_id)
        if entry is not None:  # a mirror built by `make offline`: check its files
            verify_snapshot(model_id, snap, entry)
        return
    if model_id in MIRROR_IDS:
        how = "build the mirror with `make offline` (python -m embedlab.offline build)"
    else:
        how = (
            f"the offline mirror can build only {', '.join(sorted(MIRROR_IDS))}; "
            "run online (unset EMBEDLAB_OFFLINE) to download this one"
        )
    raise MissingOfflineAsset(
        f"offline mode (EMBEDLAB_OFFLINE=1): model {model_id!r} is not in the mirror at {mirror}; {how}"
    )


def verify_snapshot(model_id: str, snap: Path, entry: dict) -> None:
    """Check every file the manifest lists: present, same size, same sha256.

    Sizes are checked on every call; each file's sha256 is computed once and memoised
    by (path, mtime, size) in ``$EMBEDLAB_HOME/verified-mirror-files.json``, so a file
    overwritten on disk is hashed again, and loads after the first cost a ``stat``.

    Raises:
        MissingOfflineAsset: naming the first bad file and how to repair (`make offline`).
    """
    memo = _read_memo()
    changed = False
    for rel, info in sorted(entry.get("files", {}).items()):
        path = snap / rel
        problem, digest = _file_problem(path, info, memo)
        if problem is not None:
            raise MissingOfflineAsset(
                f"offline mirror: {model_id} file {rel!r} {problem} ({path}); the mirror is "
                "damaged: rebuild it with `make offline` (python -m embedlab.offline build)"
            )
        changed |= digest is not None
    if changed:
        _write_memo(memo)


def _file_problem(path: Path, info: dict, memo: dict) -> tuple[str | None, str | None]:
    """(what is wrong with ``path`` or None, its new sha256 if it had to be computed)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "is missing", None
    if st.st_size != info["size"]:
        return f"has {st.st_size:,} bytes, the manifest says {info['size']:,}", None
    stamp = [st.st_mtime_ns, st.st_size]
    known = memo.get(str(path))
    digest = None
    if not known or known[:2] != stamp:
        digest = sha256(path)
        memo[str(path)] = [*stamp, digest]
    if memo[str(path)][2] != info["sha256"]:
        memo.pop(str(path))  # re-hash next time, in case it is restored
        return "does not match the manifest's sha256 (overwritten or corrupted)", digest
    return None, digest


def _memo_path() -> Path:
    return home_dir() / VERIFIED


def _read_memo() -> dict:
    try:
        data = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(memo: dict) -> None:
    try:
        write_json(_memo_path(), memo)
    except OSError:  # a read-only home only costs re-hashing next time
        pass
