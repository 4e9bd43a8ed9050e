"""Embedding cache: keys, hits, atomic writes that survive interrupts and kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from embedlab import cache


class FakeTokenizer:
    """The tokenizer attributes the cache key reads."""

    truncation_side = "right"
    padding_side = "right"
    special_tokens_map = {"unk_token": "[UNK]"}

    def __repr__(self) -> str:
        return f"FakeTokenizer(vocab={self.special_tokens_map})"


class FakeModel(torch.nn.Module):
    """Stands in for a SentenceTransformer: deterministic encode, counts its calls."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([scale]))
        self.prompts = {"query": "query: "}
        self.max_seq_length = 128
        self.default_prompt_name = None
        self.truncate_dim = None
        self.tokenizer = FakeTokenizer()
        self.calls = 0

    def get_sentence_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts, prompt=None, normalize_embeddings=True, **_):
        self.calls += 1
        x = np.array(
            [[len((prompt or "") + t), t.count("a") + 1.0, float(self.w.detach())] for t in texts]
        )
        return x / np.linalg.norm(x, axis=1, keepdims=True) if normalize_embeddings else x


TEXTS = ["a cat", "banana", "", "an apple a day"]


def test_second_encode_is_a_cache_hit(tmp_home):
    m = FakeModel()
    first = cache.encode(m, TEXTS)
    second = cache.encode(m, TEXTS)
    assert m.calls == 1
    assert np.array_equal(first, second) and first.dtype == np.float32 and first.shape == (4, 3)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: {"prompt": "passage: "},
        lambda m: {"prompt_name": "query"},
        lambda m: {"normalize": False},
        lambda m: setattr(m, "max_seq_length", 64) or {},
        lambda m: m.w.data.fill_(2.0) and {},
        lambda m: setattr(m, "truncate_dim", 2) or {},
        lambda m: setattr(m, "default_prompt_name", "query") or {},
        lambda m: setattr(m.tokenizer, "truncation_side", "left") or {},
        lambda m: setattr(m.tokenizer, "padding_side", "left") or {},
        lambda m: setattr(m.tokenizer, "special_tokens_map", {"unk_token": "<unk>"}) or {},
    ],
    ids=[
        "prompt",
        "prompt_name",
        "normalize",
        "max_seq_length",
        "weights",
        "truncate_dim",
        "default_prompt_name",
        "truncation_side",
        "padding_side",
        "tokenizer",
    ],
)
def test_every_key_component_invalidates(tmp_home, change):
    m = FakeModel()
    cache.encode(m, TEXTS)
    kwargs = change(m)
    cache.encode(m, TEXTS, **kwargs)
    assert m.calls == 2


def test_text_order_and_boundaries_matter():
    assert cache.texts_hash(["ab", "c"]) != cache.texts_hash(["a", "bc"])
    assert cache.texts_hash(["a", "b"]) != cache.texts_hash(["b", "a"])


def test_bad_input(tmp_home):
    with pytest.raises(ValueError, match="no texts"):
        cache.encode(FakeModel(), [])
    with pytest.raises(ValueError, match="list of str"):
        cache.encode(FakeModel(), ["ok", 3])
    with pytest.raises(ValueError, match="prompt_name"):
        cache.encode(FakeModel(), ["ok"], prompt_name="nope")


def test_a_single_string_is_a_type_error_not_one_text_per_character(tmp_home):
    with pytest.raises(TypeError, match="single str.*pass a list of strings"):
        cache.encode(FakeModel(), "a string")


def test_default_prompt_is_applied_and_keyed(tmp_home):
    m = FakeModel()
    plain = cache.encode(m, TEXTS)
    m.default_prompt_name = "query"
    assert np.array_equal(cache.encode(m, TEXTS), cache.encode(m, TEXTS, prompt="query: "))
    assert not np.array_equal(plain, cache.encode(m, TEXTS)) and m.calls == 2


def test_nan_embeddings_are_not_cached(tmp_home):
    m = FakeModel()
    m.encode = lambda texts, **_: np.full((len(texts), 3), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        cache.encode(m, TEXTS)
    assert not list(cache.cache_dir().glob("*.npy"))


def test_interrupted_write_leaves_no_entry(tmp_home, monkeypatch):
    m = FakeModel()

    def half_write(f, arr, **_):
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # undone at the end, unlike tmp_home's patches
        patch.setattr(cache.np, "save", half_write)
        with pytest.raises(KeyboardInterrupt):
            cache.encode(m, TEXTS)
    assert list(cache.cache_dir().iterdir()) == []
    cache.encode(m, TEXTS)
    assert m.calls == 2  # nothing was cached by the interrupted run


def test_killed_writer_never_leaves_a_corrupt_entry(tmp_path):
    """SIGKILL in the middle of np.save: only a temp file remains; the key stays a miss."""
    target = tmp_path / "entry.npy"
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from pathlib import Path
        from embedlab import cache
        real_save = np.save
        def dying_save(f, arr, **kw):
            f.write(b"\\x93NUMPY" + b"0" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        cache.np.save = dying_save
        cache.save_entry(Path({str(target)!r}), np.ones((1000, 8), dtype=np.float32))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    assert cache.load_cached(target) is None
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(name.startswith(".tmp-") for name in leftovers)
    # a later write of the same key succeeds and reads back intact
    cache.save_entry(target, np.ones((3, 2), dtype=np.float32))
    assert np.array_equal(cache.load_cached(target), np.ones((3, 2), dtype=np.float32))


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp's owner-only mode must not leak: a shared mirror's manifest stays readable."""
    plain, atomic = tmp_path / "plain.json", tmp_path / "atomic.json"
    plain.write_bytes(b"{}")
    cache.atomic_write(atomic, lambda f: f.write(b"{}"))
    assert atomic.read_bytes() == b"{}"
    assert atomic.stat().st_mode == plain.stat().st_mode


def test_truncated_file_is_treated_as_a_miss(tmp_path):
    p = tmp_path / "x.npy"
    p.write_bytes(b"\x93NUMPY garbage")
    assert cache.load_cached(p) is None
    assert not os.path.exists(p)  # a corrupt entry is deleted, so it is recomputed


def test_atomic_folder_renames_into_place_or_keeps_the_first(tmp_path):
    target = tmp_path / "models" / "m"

    def fill(text):
        def write(folder):
            (folder / "weights.bin").write_text(text)
            (folder / "sub").mkdir()
            (folder / "sub" / "config.json").write_text("{}")

        return write

    assert cache.atomic_folder(target, fill("first")) is True
    assert (target / "weights.bin").read_text() == "first" and (target / "sub/config.json").exists()
    assert cache.atomic_folder(target, fill("second")) is False  # another writer was first
    assert (target / "weights.bin").read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]  # no temp folder left


def test_atomic_folder_gives_the_permissions_of_a_plain_mkdir(tmp_path):
    """mkdtemp's 0700 must not leak: a model saved to a shared cache stays readable."""
    plain, atomic = tmp_path / "plain", tmp_path / "atomic"
    plain.mkdir()
    assert cache.atomic_folder(atomic, lambda folder: (folder / "w.bin").write_bytes(b"x"))
    assert atomic.stat().st_mode == plain.stat().st_mode
    assert (atomic / "w.bin").read_bytes() == b"x"


def test_atomic_folder_failure_leaves_nothing_and_sweeps_stale_temps(tmp_path):
    import os
    import time

    parent = tmp_path / "models"
    stale = parent / ".tmp-killed"
    stale.mkdir(parents=True)
    old = time.time() - 2 * cache.STALE_TMP_SECONDS
    os.utime(stale, (old, old))

    def half_write(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.atomic_folder(parent / "m", half_write)
    assert list(parent.iterdir()) == []  # neither the half-written nor the stale folder


def _word_level(vocab: dict[str, int]):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_tokenizer_key_ignores_call_state_but_not_the_vocabulary():
    """A tokenizer call sets truncation/padding on the backend: that must not move the key
    (it did: notebook 10 re-encoded the corpus notebook 03 had cached), a vocabulary must."""

    class Wrapped:  # a transformers fast tokenizer exposes its backend like this
        def __init__(self, backend):
            self.backend_tokenizer = backend

    backend = _word_level({"[UNK]": 0, "[PAD]": 1, "a": 2, "cat": 3})
    fresh = cache.tokenizer_settings(type("M", (), {"tokenizer": Wrapped(backend)}))
    backend.enable_truncation(max_length=8)
    backend.enable_padding(pad_id=1, pad_token="[PAD]")
    assert backend.encode("a cat").ids[:2] == [2, 3]
    used = cache.tokenizer_settings(type("M", (), {"tokenizer": Wrapped(backend)}))
    assert used == fresh
    other = _word_level({"[UNK]": 0, "[PAD]": 1, "a": 2, "dog": 3})
    assert cache.tokenizer_settings(type("M", (), {"tokenizer": Wrapped(other)})) != fresh


def test_tokenizer_key_rewrites_a_serialisation_once(monkeypatch):
    """The call-state-free rewrite (~1 s for E5's vocabulary) runs once per raw form; a
    repeat is a memo hit with the same key, and a new raw form is rewritten again."""
    calls = []
    rewrite = cache._stable_serial
    monkeypatch.setattr(cache, "_stable_serial", lambda s: calls.append(s) or rewrite(s))
    monkeypatch.setattr(cache, "_STABLE_HASHES", {})
    backend = _word_level({"[UNK]": 0, "a": 1})
    first = cache._serial_hash(backend.to_str())
    assert cache._serial_hash(backend.to_str()) == first
    assert len(calls) == 1
    backend.enable_truncation(max_length=8)  # another raw form, the same stable one
    assert cache._serial_hash(backend.to_str()) == first
    assert len(calls) == 2
    assert first == cache._blake(rewrite(backend.to_str()))
