"""`python -m embedlab doctor`: every problem is found and comes with a one-line fix."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from embedlab import doctor, offline
from embedlab.offline.builder import MIRROR

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("profile", "offline", "mirror", "data", "cache", "versions", "pins")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Offline, fast, with an isolated home, mirror and data folder (all empty)."""
    for name, value in {
        "EMBEDLAB_OFFLINE": "1",
        "EMBEDLAB_PROFILE": "fast",
        "EMBEDLAB_HOME": str(tmp_path / "home"),
        "EMBEDLAB_MIRROR_DIR": str(tmp_path / "mirror"),
        "EMBEDLAB_DATA_DIR": str(tmp_path / "data"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "data").mkdir()
    return tmp_path


def _fixes(r: doctor.Report) -> dict[str, str]:
    for what, fix in r.problems:
        assert "\n" not in fix and fix.strip(), (what, fix)  # one line each
    return dict(r.problems)


def test_empty_data_dir_names_each_missing_dataset_with_a_fix(env: Path) -> None:
    r = doctor.Report()
    doctor.check_data(r)
    fixes = _fixes(r)
    assert len(fixes) == 5
    stsb = next(w for w in fixes if w.startswith("dataset stsb:"))
    assert "train.jsonl, validation.jsonl, test.jsonl" in stsb
    assert (
        fixes[stsb]
        == f"copy shared/data/stsb/ into {env / 'data'}/ (layout: shared/data/README.md)"
    )
    assert "missing: stsb, sickr, sick, snli, scifact" in r.lines[0]


def test_data_dir_with_some_datasets(env: Path) -> None:
    (env / "data" / "sickr").mkdir()
    (env / "data" / "sickr" / "test.jsonl").write_text("{}\n")
    (env / "data" / "scifact" / "qrels").mkdir(parents=True)
    for f in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):  # no qrels/train.tsv
        (env / "data" / "scifact" / f).write_text("x\n")
    r = doctor.Report()
    doctor.check_data(r)
    assert r.lines[0].split(": ", 1)[1].startswith("sickr |")
    assert any("scifact" in w and "qrels/train.tsv" in w for w, _ in r.problems)


def test_offline_without_data_dir_or_mirror(env: Path, monkeypatch) -> None:
    monkeypatch.delenv("EMBEDLAB_DATA_DIR")
    r = doctor.Report()
    doctor.check_data(r)
    doctor.check_mirror(r)
    fixes = _fixes(r)
    assert fixes["offline mode is on but EMBEDLAB_DATA_DIR is not set"].startswith(
        "export EMBEDLAB_DATA_DIR="
    )
    assert "make offline" in fixes.values()


def test_online_missing_mirror_and_data_dir_are_no_problem(env: Path, monkeypatch) -> None:
    monkeypatch.delenv("EMBEDLAB_OFFLINE")
    monkeypatch.delenv("EMBEDLAB_DATA_DIR")
    r = doctor.Report()
    doctor.check_offline(r)
    doctor.check_mirror(r)
    doctor.check_data(r)
    assert r.problems == []
    assert r.lines[0].startswith("offline   off")


def _fake_mirror(dest: Path, corrupt: str) -> None:
    """A mirror with every needed model as one small file; ``corrupt``'s file is altered."""
    models = {}
    for hub_id, spec in MIRROR.items():
        repo = dest / "hub" / offline.repo_folder(hub_id)
        snap = repo / "snapshots" / spec.revision
        snap.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(spec.revision)
        data = f"weights of {hub_id}".encode()
        (snap / "model.safetensors").write_bytes(data)
        models[hub_id] = {
            "hub_id": hub_id,
            "package": spec.package,
            "version": spec.version,
            "exact": spec.exact,
            "weights": "exact" if spec.exact else "dequantized",
            "files": {
                "model.safetensors": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            },
        }
        if hub_id == corrupt:  # same size, different bytes: only the hash can tell
            (snap / "model.safetensors").write_bytes(data.upper())
    import json

    (dest / "manifest.json").write_text(json.dumps({"format": 1, "models": models}))


def test_mirror_hashes_are_verified(env: Path) -> None:
    bad = "intfloat/multilingual-e5-small"
    _fake_mirror(env / "mirror", corrupt=bad)
    r = doctor.Report()
    doctor.check_mirror(r)
    fixes = _fixes(r)
    assert len(fixes) == 1
    ((what, fix),) = fixes.items()
    assert what.startswith(bad) and "sha256 differs" in what
    assert (
        fix
        == f"rm -rf {env / 'mirror' / 'hub' / 'models--intfloat--multilingual-e5-small'} && make offline"
    )
    assert "2/3 models ok, sha256 verified" in r.lines[0]
    assert any("all-MiniLM-L6-v2: exact" in line and "files ok" in line for line in r.lines)
    assert any(bad in line and "dequantized" in line and "BROKEN" in line for line in r.lines)
    quick = doctor.Report()
    doctor.check_mirror(quick, verify=False)  # sizes agree: --quick cannot see it
    assert quick.problems == []


def test_mirror_model_missing(env: Path) -> None:
    _fake_mirror(env / "mirror", corrupt="")
    manifest = env / "mirror" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"HuggingFaceTB/', '"Other/'))
    r = doctor.Report()
    doctor.check_mirror(r)
    assert (
        f"model HuggingFaceTB/SmolLM2-135M-Instruct is not in the mirror {env / 'mirror'}",
        "make offline",
    ) in r.problems


def test_invalid_profile(env: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMBEDLAB_PROFILE", "turbo")
    r = doctor.Report()
    doctor.check_profile(r)
    assert _fixes(r) == {
        "EMBEDLAB_PROFILE='turbo' is not a profile": "export EMBEDLAB_PROFILE=fast"
    }


def test_profile_says_why(env: Path, monkeypatch) -> None:
    r = doctor.Report()
    doctor.check_profile(r)
    assert (
        r.lines == ["profile   fast (EMBEDLAB_PROFILE=fast; no CUDA GPU)"]
        or "a CUDA GPU" in r.lines[0]
    )
    monkeypatch.delenv("EMBEDLAB_PROFILE")
    r = doctor.Report()
    doctor.check_profile(r)
    assert "the default with" in r.lines[0]


def test_pins_report_a_version_that_differs(tmp_path: Path) -> None:
    import numpy

    pins = tmp_path / "constraints.txt"
    pins.write_text(
        f"# comment\nnumpy==0.0.1\npackaging=={Version(doctor._installed('packaging'))}\nnot-installed-pkg==1.0\n"
    )
    r = doctor.Report()
    doctor.check_pins(r, constraints=pins)
    fixes = _fixes(r)
    assert fixes == {
        f"numpy {numpy.__version__} installed, wants ==0.0.1 (constraints.txt)": 'make install (pip install -c constraints.txt -e ".[dev]")'
    }
    assert r.lines == ["pins      1/2 installed versions match constraints.txt"]


def test_bad_constraints_line_raises(tmp_path: Path) -> None:
    pins = tmp_path / "constraints.txt"
    pins.write_text("numpy=>2\n")
    with pytest.raises(ValueError, match="not a requirement"):
        doctor.read_pins(pins)


def test_every_pin_lies_in_its_pyproject_range() -> None:
    """constraints.txt (exact, for CI and make) agrees with pyproject.toml (ranges, for Colab)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = [Requirement(s) for s in project["dependencies"]]
    ranges += [Requirement(s) for extra in project["optional-dependencies"].values() for s in extra]
    pins = {doctor._norm(p.name): p for p in doctor.read_pins(ROOT / "constraints.txt")}
    for req in ranges:
        pin = pins.get(doctor._norm(req.name))
        assert pin is not None, f"{req.name} has no line in constraints.txt"
        if req.name == "torch":
            assert str(pin.specifier) == str(req.specifier)
            continue
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{pin} is not an exact pin"
        assert req.specifier.contains(spec.version), f"{pin} is outside pyproject's {req}"
    for req in ranges:  # ranges, not pins: Colab keeps what it has where it can
        assert not any(s.operator == "==" for s in req.specifier), req


def test_low_memory(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       12000000 kB\nMemAvailable:    1048576 kB\n")
    r = doctor.Report()
    doctor.check_memory(r, meminfo)
    assert r.lines == ["memory    1.0 GiB available of 11.4 GiB"]
    assert len(_fixes(r)) == 1


def test_cache_size(env: Path) -> None:
    (env / "home" / "embeddings").mkdir(parents=True)
    (env / "home" / "embeddings" / "x.npy").write_bytes(b"0" * 2500)
    r = doctor.Report()
    doctor.check_cache(r)
    assert r.lines[0] == f"cache     {env / 'home'}: 2.5 kB (embeddings 2.5 kB; mirror elsewhere)"


def test_command_line(env: Path) -> None:
    """The real command, on the empty setup of the fixture: problems, fixes, exit status 1."""
    cmd = [sys.executable, "-m", "embedlab", "doctor", "--quick"]
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, env=env_vars, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "embedlab 0.1.0 doctor"
    assert [ln.split()[0] for ln in lines[1:8]] == list(LABELS)
    assert "problem(s):" in res.stdout and "    fix: make offline" in lines
    usage = subprocess.run(
        [sys.executable, "-m", "embedlab"], env=env_vars, capture_output=True, text=True
    )
    assert usage.returncode == 2 and "doctor" in usage.stdout
