"""`make lab`: the command line it runs serves JupyterLab, as root or not, with no browser.

The server test starts exactly what `make lab` runs (`make lab-command` prints it) on a
free port, headless, polls ``/api/status`` until it answers, then stops it by its PID.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the environment running the tests (CI: the Makefile's .venv)
TOKEN = "embedlab-test-token"
START_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def lab_command(**make_vars: str) -> list[str]:
    """The command `make lab` runs, as printed by `make lab-command` (VENV = this venv)."""
    args = [f"{k}={v}" for k, v in {"VENV": str(VENV), **make_vars}.items()]
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "lab-command", *args],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")},
    ).stdout
    return shlex.split(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_command_allows_root_only_for_uid_0_and_skips_the_browser_headless() -> None:
    as_root = lab_command(LAB_UID="0")
    as_user = lab_command(LAB_UID="1000")
    assert as_root[:2] == [str(VENV / "bin" / "jupyter"), "lab"]
    assert as_root[-1] == "notebooks/"
    assert "--allow-root" in as_root
    assert "--allow-root" not in as_user  # jupyter rejects it for nobody, but it is noise
    assert "--no-browser" in as_root and "--no-browser" in as_user  # no DISPLAY here
    with_display = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "lab-command", f"VENV={VENV}", "DISPLAY=:0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if sys.platform != "darwin":
        assert "--no-browser" not in with_display.split()


def _status(port: int) -> dict | None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _serve_and_stop(
    cmd: list[str], home: Path, prefix: list[str] = (), extra_env: dict | None = None
) -> str:
    """Start ``cmd`` on a free port, poll /api/status until it answers, stop it by PID.

    Returns the server's log. ``prefix`` runs it as another user (setpriv execs, so the
    PID is the server's).
    """
    port = free_port()
    cmd = [
        *prefix,
        *cmd,
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}",
    ]
    env = {
        **os.environ,
        "HOME": str(home),  # runtime files and settings stay in the test's folder
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "BROWSER": "false",  # belt and braces: a browser could never open here
    }
    env.pop("DISPLAY", None)
    env.update(extra_env or {})
    log = home / "lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            status = _status(port)
            if status is not None:
                break
            time.sleep(0.5)
        text = log.read_text()
        assert proc.poll() is None, f"jupyter lab exited with {proc.returncode}:\n{text}"
        assert status is not None, f"no answer on /api/status in {START_TIMEOUT_S} s:\n{text}"
        assert "started" in status
        assert f"http://127.0.0.1:{port}/lab?token=" in text  # the URL is printed
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
    assert proc.returncode is not None
    return text


def test_make_lab_command_serves_jupyterlab_headless(tmp_path: Path) -> None:
    """As this user (root in CI: the case the issue reported)."""
    if not (VENV / "bin" / "jupyter").exists():
        pytest.skip(f"no jupyter in {VENV}")
    _serve_and_stop(lab_command(), tmp_path)


def test_make_lab_command_serves_jupyterlab_as_a_user() -> None:
    """As an unprivileged user: the command `make lab` builds for a non-zero uid."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to switch to an unprivileged user")
    as_user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    home = Path(tempfile.mkdtemp(prefix="embedlab-lab-"))  # pytest's tmp is root-only
    try:
        home.chmod(0o777)
        path = f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin"  # not root's PATH
        probe = [*as_user, "env", f"HOME={home}", f"PATH={path}", "jupyter", "lab", "--version"]
        if subprocess.run(probe, cwd=ROOT, capture_output=True).returncode != 0:
            # e.g. the venv's interpreter lives under /root (mode 700, pyenv)
            pytest.skip(f"uid 65534 cannot run {VENV / 'bin' / 'jupyter'} here")
        text = _serve_and_stop(
            lab_command(LAB_UID="65534"), home, prefix=as_user, extra_env={"PATH": path}
        )
        assert "--allow-root" not in text
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_jupyter_as_root_without_allow_root_is_refused(tmp_path: Path) -> None:
    """The failure the issue reported, so the test above is known to exercise the flag."""
    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    if not (VENV / "bin" / "jupyter").exists():
        pytest.skip(f"no jupyter in {VENV}")
    cmd = [a for a in lab_command() if a != "--allow-root"] + [f"--port={free_port()}"]
    env = {**os.environ, "HOME": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--allow-root" in proc.stdout + proc.stderr
