"""Profiles and offline switches."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embedlab import config


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROFILE", "full")
    assert config.profile().name == "full" and config.profile().scifact_distractors is None
    monkeypatch.setenv("EMBEDLAB_PROFILE", "FAST")
    assert config.profile().max_seq_length == 256


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("EMBEDLAB_PROFILE", raising=False)
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    assert config.profile().name == "full"
    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    assert config.profile().name == "fast"


def test_unknown_profile_is_rejected(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROFILE", "turbo")
    with pytest.raises(ValueError, match="turbo"):
        config.profile()


def test_offline_env_is_applied_before_huggingface_hub_import(tmp_path):
    code = (
        "import embedlab, huggingface_hub.constants as c, os;"
        "print(c.HF_HUB_OFFLINE, c.HF_HUB_CACHE, os.environ['HF_DATASETS_OFFLINE'])"
    )
    env = {"EMBEDLAB_OFFLINE": "1", "EMBEDLAB_MIRROR_DIR": str(tmp_path), "PATH": "/usr/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out == ["True", str(tmp_path / "hub"), "1"]


def test_offline_env_patches_an_already_imported_hub(tmp_path):
    code = (
        "import huggingface_hub.constants as c, os;"
        "os.environ['EMBEDLAB_OFFLINE']='1';"
        "import embedlab; print(c.HF_HUB_OFFLINE, c.HF_HUB_CACHE)"
    )
    env = {"EMBEDLAB_MIRROR_DIR": str(tmp_path), "PATH": "/usr/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out == ["True", str(tmp_path / "hub")]


def test_setup_prints_profile_line(monkeypatch, capsys):
    import embedlab

    monkeypatch.setenv("EMBEDLAB_PROFILE", "fast")
    line = embedlab.setup(seed=3)
    assert "profile fast" in line and "seed 3" in line
    assert line in capsys.readouterr().out


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_env_vars_count_as_unset(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("EMBEDLAB_HOME", "EMBEDLAB_MIRROR_DIR", "EMBEDLAB_DATA_DIR"):
        monkeypatch.setenv(name, value)
    assert config.home_dir() == tmp_path / ".cache" / "embedlab"
    assert config.mirror_dir() == tmp_path / ".cache" / "embedlab" / "hf-mirror"
    assert config.data_dir() is None


def test_relative_env_paths_become_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBEDLAB_MIRROR_DIR", "mirror")
    assert config.mirror_dir() == tmp_path / "mirror" and config.mirror_dir().is_absolute()


def test_budgets_are_fields_of_the_profile(monkeypatch):
    """Package code branches on these fields, never on the profile's name."""
    fast, full = config.FAST, config.FULL
    assert fast.training_start == "static" and full.training_start.endswith("bert-base-uncased")
    assert fast.benchmark_cap("STS-B") == 200 and fast.benchmark_cap("SciFact") == 50
    assert full.benchmark_cap("STS-B") is None and fast.benchmark_cap("no-such-task") is None
    custom = config.Profile("gpu-small", 128, None, 0.5, "org/model", (("STS-B", 7),))
    assert custom.benchmark_cap("STS-B") == 7 and custom.training_start == "org/model"


def test_no_package_module_branches_on_the_profile_name():
    """Budgets live in Profile: a `.name == "fast"` check would bypass a custom profile."""
    import re
    from pathlib import Path

    src = Path(config.__file__).parent
    # printing the name is fine; comparing it is a budget outside Profile
    pattern = re.compile(r"(profile\(\)|PROFILE|prof)\.name\s*(==|!=|\bin\b)")
    hits = [
        f"{p.name}:{i}"
        for p in sorted(src.rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == [], hits
