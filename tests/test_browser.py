"""A real browser drives the capstone app: JupyterLab + headless Chromium (Playwright).

The test starts JupyterLab on 127.0.0.1 (free port, random token, CI's environment passed
through) over a scratch copy of ``notebooks/10_search_app.ipynb`` with its outputs
cleared, opens it in Debian's Chromium, runs every cell from the Run menu, types a query
into the app's box, clicks Search and checks that ranked results appear. It saves
``artifacts/browser/search_app.png`` (``search_app_failure.png`` when it fails).

It skips only when Chromium or Playwright is missing (``scripts/install_browser.sh``
installs the browser; ``playwright`` is a dev dependency; never ``playwright install``).
Runtime: ~40 s with a warm embedding cache; with a cold one, add the notebook's cold runtime.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "10_search_app.ipynb"
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("EMBEDLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Not a query the notebook itself runs: the results must come from this browser search.
QUERY = "Is smoking a risk factor for lung cancer?"
RUN_ALL_TIMEOUT_S = 600
# JupyterLab user settings: no autosave (the copy is scratch anyway), no news / update
# checks (no network), every cell kept in the DOM so prompts can be read.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def _missing_browser() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not installed at {CHROMIUM} (run scripts/install_browser.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing_browser() is not None, reason=str(_missing_browser())),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scratch_notebook(folder: Path) -> Path:
    """Copy the notebook with outputs and execution counts cleared (fresh prompts)."""
    if not NOTEBOOK.exists():
        pytest.fail(f"{NOTEBOOK} is missing: run scripts/notebooks.py run 10")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    path = folder / NOTEBOOK.name
    nbformat.write(nb, path)
    return path


def _lab_env(tmp: Path) -> dict[str, str]:
    """CI's environment plus isolated Jupyter config, runtime and settings folders."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env[name] = str(tmp / name.lower())
    settings = tmp / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    return env


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (read from /proc; kernels may run in their own session)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group and every descendant, then SIGKILL leftovers."""
    pids = _children(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for send in (
            lambda s: os.killpg(proc.pid, s),
            *[lambda s, p=p: os.kill(p, s) for p in pids],
        ):
            try:
                send(sig)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM and not any(Path(f"/proc/{p}").exists() for p in pids):
            return


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback only)
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab not ready after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving a scratch copy of the notebook; yields the notebook's URL."""
    (tmp_path / "work").mkdir()
    nb = _scratch_notebook(tmp_path / "work")
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.root_dir={nb.parent}", f"--IdentityProvider.token={token}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=_lab_env(tmp_path), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/api/status?token={token}", proc, log)
        yield f"{base}/lab/tree/{nb.name}?reset&token={token}"
    finally:
        _stop(proc)


# Prompt texts of every code cell: "[ ]:" not run, "[*]:" queued or running, "[7]:" done.
JS_PROMPTS = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent.trim())"""
JS_TRACEBACK = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
    .map(o => o.textContent).filter(t => /Traceback|Error:/.test(t)).join('\\n').slice(-3000)"""


JS_DIALOGS = (
    """() => [...document.querySelectorAll('.jp-Dialog')].map(d => d.textContent).join(' | ')"""
)
KERNEL_IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'


def _click_run_all(page) -> None:
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()


def _run_all_cells(page, timeout: float = RUN_ALL_TIMEOUT_S, attempts: int = 3) -> int:
    """Run > Run All Cells once the kernel is idle; wait until every code cell has a count.

    A click that lands before the session is wired up queues nothing (a CI run once sat
    600 s on unrun prompts), so the click is repeated while no cell has started.
    """
    page.locator(KERNEL_IDLE).first.wait_for(timeout=180_000)
    deadline, started, clicks, last_click = time.monotonic() + timeout, False, 0, 0.0
    while time.monotonic() < deadline:
        if not started and clicks < attempts and time.monotonic() - last_click > 30:
            _click_run_all(page)
            clicks, last_click = clicks + 1, time.monotonic()
        prompts = page.evaluate(JS_PROMPTS)
        busy = any("*" in p for p in prompts)
        done = [p for p in prompts if p[1:-2].strip().isdigit()]
        started = started or busy or bool(done)
        if prompts and len(done) == len(prompts):
            return len(done)
        if started and not busy and done:
            pytest.fail(f"a cell failed after {len(done)} cells:\n{page.evaluate(JS_TRACEBACK)}")
        time.sleep(2)
    pytest.fail(
        f"cells still running after {timeout} s ({clicks} Run All clicks): "
        f"{page.evaluate(JS_PROMPTS)}; dialogs: {page.evaluate(JS_DIALOGS)!r}"
    )


def _search_in_app(page) -> int:
    """Type QUERY into the app's box, click Search, wait for ranked rows; their count."""
    from playwright.sync_api import expect

    box = page.locator(".embedlab-query input")
    expect(box).to_have_count(1)
    box.evaluate("e => e.scrollIntoView({block: 'start'})")
    box.fill(QUERY)
    page.locator("button.embedlab-search").click()
    results = page.locator(".embedlab-results")
    expect(results).to_contain_text(QUERY, timeout=60_000)
    rows = results.locator(".embedlab-hit")
    expect(rows.first).to_be_visible()
    expect(results).to_contain_text("total")  # the per-stage latency line
    box.evaluate("e => e.scrollIntoView({block: 'start'})")
    return rows.count()


def test_search_app_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1300},
        )
        page = context.new_page()
        try:
            page.set_default_timeout(60_000)
            page.goto(lab)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            n_cells = _run_all_cells(page)
            n_rows = _search_in_app(page)
            page.screenshot(path=str(ARTIFACTS / "search_app.png"))
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "search_app_failure.png"))
            log = tmp_path / "jupyterlab.log"
            print(f"JupyterLab log tail:\n{log.read_text()[-3000:] if log.exists() else '-'}")
            raise
        finally:
            context.close()
    assert n_rows >= 3, f"expected ranked results in the page, got {n_rows} rows"
    print(f"browser test: {n_cells} cells run, {n_rows} hits, {time.monotonic() - start:.0f} s")
