"""Shared fixtures. Unit tests never touch the network; real-data tests need EMBEDLAB_DATA_DIR."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """An isolated EMBEDLAB_HOME, so cache tests never see the user's cache."""
    monkeypatch.setenv("EMBEDLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def offline_mirror_ready() -> bool:
    """True when offline mode is on and the mirror has been built (as in CI)."""
    from embedlab.config import is_offline, mirror_dir

    return is_offline() and (mirror_dir() / "manifest.json").exists()


@pytest.fixture(scope="session")
def models_available() -> None:
    """Skip a test that loads real models unless the mirror (as in CI) or the Hub is there."""
    if not (offline_mirror_ready() or os.environ.get("EMBEDLAB_TEST_ONLINE") == "1"):
        pytest.skip("needs the offline model mirror (make offline, EMBEDLAB_OFFLINE=1) or the Hub")
