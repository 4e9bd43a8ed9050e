"""Shared fixtures. Unit tests never touch the network; real-data tests need EMBEDLAB_DATA_DIR."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _embedlab_env_is_left_as_found():
    """Fail a test that changes an ``EMBEDLAB_*`` variable for the rest of the session.

    CI sets EMBEDLAB_HOME to the project's cache; a test that deleted it (instead of
    using ``monkeypatch``) once sent every later test, and the notebooks run from
    tests/test_under_load.py, to an empty ``~/.cache/embedlab``.
    """
    before = {k: v for k, v in os.environ.items() if k.startswith("EMBEDLAB_")}
    yield
    after = {k: v for k, v in os.environ.items() if k.startswith("EMBEDLAB_")}
    if after != before:
        os.environ.update(before)
        for k in set(after) - set(before):
            del os.environ[k]
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        pytest.fail(f"the test changed {changed} without restoring them; use monkeypatch.setenv")


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
