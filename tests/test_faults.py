"""Fault injection: corrupt cache entries, kill -9 mid-write, damaged weights, racing writers.

Each test breaks something on disk (or kills a process) the way a crash, a full disk or
a careless user would, then checks that the next run gives correct results or a clear
error, never wrong vectors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from embedlab import cache, offline
from embedlab.config import MissingOfflineAsset
from embedlab.offline import runtime

FAKES = '''
import numpy as np
import torch


class FakeModel(torch.nn.Module):
    """A deterministic stand-in for a SentenceTransformer with D = 3."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0]))
        self.prompts, self.default_prompt_name, self.truncate_dim = {}, None, None
        self.max_seq_length, self.calls = 128, 0

    def get_sentence_embedding_dimension(self):
        return 3

    def encode(self, texts, prompt=None, normalize_embeddings=True, **_):
        self.calls += 1
        x = np.array([[len(t) + 1.0, t.count("a") + 1.0, 2.0] for t in texts])
        return x / np.linalg.norm(x, axis=1, keepdims=True)
'''

TEXTS = ["a cat", "banana", "an apple a day"]


@pytest.fixture
def fakes(tmp_path: Path):
    """The FakeModel module, importable by this process and by child processes."""
    (tmp_path / "fakes.py").write_text(FAKES, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("fakes", tmp_path / "fakes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(script: str, tmp_path: Path, home: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter that can import fakes.py and embedlab."""
    env = {
        **os.environ,
        "EMBEDLAB_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _with_checksum(payload: bytes) -> bytes:
    """Bytes of a cache entry whose trailer matches: only the validation can reject it."""
    return payload + cache.TRAILER + hashlib.sha256(payload).digest()


GOOD = np.ones((3, 3), dtype=np.float32) / np.sqrt(3)
CORRUPT = {
    "wrong dimension": _with_checksum(_npy(np.ones((3, 4), dtype=np.float32))),
    "wrong row count": _with_checksum(_npy(np.ones((2, 3), dtype=np.float32))),
    "1-D": _with_checksum(_npy(np.ones(9, dtype=np.float32))),
    "0-d": _with_checksum(_npy(np.array(1.0, dtype=np.float32))),
    "float64": _with_checksum(_npy(GOOD.astype(np.float64))),
    "NaN": _with_checksum(_npy(np.full((3, 3), np.nan, dtype=np.float32))),
    "inf": _with_checksum(_npy(np.full((3, 3), np.inf, dtype=np.float32))),
    "no checksum (plain .npy)": _npy(GOOD),
    "checksum mismatch": _npy(GOOD * 2) + cache.TRAILER + hashlib.sha256(_npy(GOOD)).digest(),
    "truncated": _with_checksum(_npy(GOOD))[:100],
    "empty file": b"",
    "not numpy": _with_checksum(b"hello, not an array"),
}


# ------------------------------------------------------------------ corrupt cache entries


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_cache_entry_is_a_miss_then_recomputed(tmp_home, fakes, kind):
    model = fakes.FakeModel()
    expected = cache.encode(model, TEXTS)
    (entry,) = cache.cache_dir().glob("*.npy")
    entry.write_bytes(CORRUPT[kind])
    again = cache.encode(model, TEXTS)
    assert model.calls == 2, "the corrupt entry must not be used"
    assert np.array_equal(again, expected) and again.dtype == np.float32
    assert cache.read_entry(entry) is not None, "the entry is rewritten, valid"
    cache.encode(model, TEXTS)
    assert model.calls == 2


def test_entry_of_another_model_dimension_is_rejected(tmp_home, fakes):
    """The same key can never serve a (N, D') array to a model of dimension D."""
    model = fakes.FakeModel()
    cache.encode(model, TEXTS)
    (entry,) = cache.cache_dir().glob("*.npy")
    assert cache.load_cached(entry, n=3, dim=3) is not None
    assert cache.load_cached(entry, n=3, dim=384) is None and not entry.exists()


# ------------------------------------------------------------------ killed writers


def test_kill_during_cache_write_then_clean_rerun(tmp_path, fakes, monkeypatch):
    home = tmp_path / "home"
    proc = _child(
        """
        import os, signal
        from embedlab import cache
        from fakes import FakeModel
        cache.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # bytes written, no rename
        cache.encode(FakeModel(), TEXTS)
        """.replace("TEXTS", repr(TEXTS)),
        tmp_path,
        home,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = home / "embeddings"
    leftovers = list(folder.iterdir())
    assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)
    monkeypatch.setenv("EMBEDLAB_HOME", str(home))  # restored after the test, even in CI
    model = fakes.FakeModel()
    first = cache.encode(model, TEXTS)
    assert model.calls == 1 and first.shape == (3, 3)
    assert leftovers[0].exists(), "a young temp file may belong to a live writer"
    old = time.time() - 2 * cache.STALE_TMP_SECONDS
    for p in leftovers:
        os.utime(p, (old, old))
    cache.encode(model, ["another", "batch"])  # the next write sweeps stale temp files
    assert not any(p.exists() for p in leftovers)


def test_two_processes_writing_the_same_key(tmp_path, fakes):
    home = tmp_path / "home"
    script = """
        import numpy as np
        from embedlab import cache
        from fakes import FakeModel
        model = FakeModel()
        first = cache.encode(model, TEXTS)
        for _ in range(150):
            path = next(cache.cache_dir().glob("*.npy"))
            cache.save_entry(path, first)  # rewrite the same key again and again
            hit = cache.load_cached(path, n=3, dim=3)
            assert hit is not None and np.array_equal(hit, first), "a reader saw a torn entry"
        print("ok")
    """.replace("TEXTS", repr(TEXTS))
    env = {
        **os.environ,
        "EMBEDLAB_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert [p.name for p in (home / "embeddings").iterdir()] == [
        next((home / "embeddings").glob("*.npy")).name
    ], "one entry, no temp files left"


TINY_MODEL = """
from tokenizers import Tokenizer, models, pre_tokenizers
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding
import torch


def build():
    torch.manual_seed(0)
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "cat": 1, "dog": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=4)], device="cpu")
"""


def test_kill_during_model_save_then_clean_rerun(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "tiny.py").write_text(TINY_MODEL, encoding="utf-8")
    proc = _child(
        """
        import os, signal
        from sentence_transformers import SentenceTransformer
        from embedlab.train import cached_model
        from tiny import build
        real = SentenceTransformer.save_pretrained
        def dying_save(self, path, *a, **k):
            real(self, path, *a, **k)  # files written into the temp folder ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... killed before the rename
        SentenceTransformer.save_pretrained = dying_save
        cached_model("tiny", build)
        """,
        tmp_path,
        home,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    models = home / "models"
    (stale,) = list(models.iterdir())
    assert stale.name.startswith(".tmp-") and not (models / "tiny").exists()
    old = time.time() - 2 * cache.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    proc = _child(
        """
        import numpy as np
        from embedlab.train import cached_model
        from tiny import build
        built = cached_model("tiny", build)  # no model saved: builds, saves, sweeps the stale temp
        loaded = cached_model("tiny", lambda: 1 / 0)  # now loads from disk, never rebuilds
        assert np.allclose(built.encode(["cat dog"]), loaded.encode(["cat dog"]))
        print("ok")
        """,
        tmp_path,
        home,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
    assert sorted(p.name for p in models.iterdir()) == ["tiny"]


def test_failed_model_save_leaves_no_temp_folder(tmp_home, monkeypatch):
    from embedlab import train

    class Unsaveable:
        def save_pretrained(self, path):
            (Path(path) / "half.bin").write_bytes(b"x")
            raise RuntimeError("serialisation failed")

    with pytest.raises(RuntimeError, match="serialisation failed"):
        train.cached_model("broken", Unsaveable)
    assert list((tmp_home / "models").iterdir()) == []


# ------------------------------------------------------------------ damaged offline weights


@pytest.fixture
def minilm_mirror(tmp_path, monkeypatch, models_available):
    """A private copy of the mirror holding only MiniLM (the shared one is never touched)."""
    from embedlab.config import mirror_dir

    src, dest = mirror_dir(), tmp_path / "mirror"
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    folder = offline.repo_folder(hub_id)
    shutil.copytree(src / "hub" / folder, dest / "hub" / folder)
    manifest = json.loads((src / offline.MANIFEST).read_text(encoding="utf-8"))
    manifest["models"] = {hub_id: manifest["models"][hub_id]}
    (dest / offline.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setenv("EMBEDLAB_MIRROR_DIR", str(dest))
    monkeypatch.setenv("EMBEDLAB_OFFLINE", "1")
    monkeypatch.setenv("EMBEDLAB_HOME", str(tmp_path / "home"))
    offline.require_model(hub_id)  # intact: passes, and memoises the sha256s
    return hub_id, offline.snapshot_dir(dest, hub_id)


def _damage(path: Path, how: str) -> None:
    if how == "overwritten":  # same size, different bytes, new mtime
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        path.write_bytes(bytes(data))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.unlink()


@pytest.mark.parametrize(
    ("rel", "how", "message"),
    [
        ("model.safetensors", "overwritten", "sha256"),
        ("model.safetensors", "truncated", "bytes"),
        ("modules.json", "deleted", "is missing"),
        ("1_Pooling/config.json", "deleted", "is missing"),
    ],
)
def test_damaged_weights_fail_loudly(minilm_mirror, rel, how, message):
    hub_id, snap = minilm_mirror
    _damage(snap / rel, how)
    with pytest.raises(MissingOfflineAsset, match=message) as err:
        offline.require_model(hub_id)
    assert repr(rel) in str(err.value) and "make offline" in str(err.value)
    from embedlab.models import load_model

    with pytest.raises(MissingOfflineAsset):  # the loader checks before loading anything
        load_model(hub_id)


def test_sha256_is_memoised_by_mtime(minilm_mirror, monkeypatch):
    hub_id, snap = minilm_mirror
    calls = []
    real = runtime.sha256
    monkeypatch.setattr(runtime, "sha256", lambda p: calls.append(p) or real(p))
    offline.require_model(hub_id)
    assert calls == [], "unchanged files are not hashed again"
    weights = snap / "model.safetensors"
    os.utime(weights, ns=(time.time_ns(), time.time_ns()))
    offline.require_model(hub_id)
    assert calls == [weights]
