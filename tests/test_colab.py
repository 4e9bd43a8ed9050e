"""The Colab bootstrap cell: installs over preinstalled libraries, detects a needed restart.

Fast tests run the generated cell in this environment with a fake ``google.colab`` (no
install: embedlab is importable) and check the restart check alone.

The slow test simulates a Colab runtime: a fresh venv with *older* heavy libraries, as a
cloud image ships them (torch 2.13.0, transformers 4.x, sentence-transformers 4.x, numpy
1.26), a fake ``google.colab`` on the path, and ``REPO_URL`` pointed at a local git
repository of this working tree (``file://``). It runs the bootstrap cell as a fresh
runtime would (Colab has numpy imported already): the install must succeed and the cell
must stop with a one-line restart message. Then, as after a restart, it runs the cell again
(no install this time) and notebook 01's first code cells, offline. The base venv is cached
under ``$EMBEDLAB_HOME/colab-sim/<hash of what it installs>``; each run works on a copy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import notebooks as nbtool  # noqa: E402

# What the simulated runtime has before the notebook runs: older majors than the pins.
COLAB_PREINSTALLED = [
    "pip>=25",  # Colab keeps pip current; the 23.x bundled with venv rejects git+file:/// URLs
    "torch==2.13.0",
    "numpy==1.26.4",
    "transformers==4.57.6",
    "sentence-transformers==4.1.0",
]
# Colab imports these while the kernel starts (numpy via its display hooks).
COLAB_PRELOADED = ["numpy"]

RUNNER = textwrap.dedent(
    """
    import json, sys
    import google.colab  # the kernel has it imported, as on Colab
    for name in json.loads(sys.argv[1]):
        __import__(name)
    ns = {"__name__": "__main__"}
    for i, path in enumerate(sys.argv[2:]):
        print(f"--- cell {i}", flush=True)
        exec(compile(open(path).read(), path, "exec"), ns)
    print("--- done", flush=True)
    """
)


def _fake_colab(root: Path) -> Path:
    """A ``google.colab`` module; ``google`` stays a namespace package (protobuf lives there)."""
    pkg = root / "fake_colab" / "google" / "colab"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(
        '"""Stand-in for Colab\'s module: its presence is the signal."""\n'
    )
    return root / "fake_colab"


def _write_cells(folder: Path, sources: list[str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, src in enumerate(sources):
        p = folder / f"cell{i}.py"
        p.write_text(src)
        paths.append(str(p))
    return paths


def _run(python: str, cells: list[str], preload: list[str], env: dict, cwd: Path, timeout=900):
    script = cwd / "runner.py"
    script.write_text(RUNNER)
    return subprocess.run(
        [python, str(script), json.dumps(preload), *cells],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------ fast: restart check alone


def _here_env(tmp_path: Path) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join([str(_fake_colab(tmp_path)), src])
    return env


def test_bootstrap_stops_with_one_line_when_an_imported_library_changed(tmp_path: Path) -> None:
    """numpy in memory is not the numpy on disk: the cell must stop, before importing embedlab."""
    fake_old_numpy = (
        'import sys, types\nsys.modules["numpy"] = types.SimpleNamespace(__version__="1.0.0")\n'
    )
    cells = _write_cells(tmp_path / "cells", [fake_old_numpy, nbtool.BOOTSTRAP])
    res = _run(sys.executable, cells, [], _here_env(tmp_path), tmp_path, timeout=120)
    assert res.returncode != 0, res.stdout
    assert "--- done" not in res.stdout
    message = res.stderr.strip().splitlines()
    assert len(message) == 1, res.stderr  # SystemExit(message): one line, no traceback
    assert message[0].startswith("Restart the runtime (Runtime > Restart session)")
    assert "numpy 1.0.0 -> " in message[0]
    assert "embedlab" not in res.stdout  # setup() never ran


def test_bootstrap_continues_when_versions_match(tmp_path: Path) -> None:
    cells = _write_cells(tmp_path / "cells", [nbtool.BOOTSTRAP])
    res = _run(sys.executable, cells, ["numpy"], _here_env(tmp_path), tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "embedlab 0.1.0 | profile" in res.stdout
    assert "--- done" in res.stdout


def test_bootstrap_off_colab_neither_installs_nor_checks(tmp_path: Path) -> None:
    """Locally the cell only imports embedlab: no pip, no version check (matplotlib is stale)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    cell = nbtool.bootstrap_cell("file:///nonexistent/repo", "no-such-ref")
    stale = (
        'import sys, types\nsys.modules["matplotlib"] = types.SimpleNamespace(__version__="0.1")\n'
    )
    res = subprocess.run(
        [sys.executable, "-c", f"{stale}\nexec({cell!r})\n"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "embedlab 0.1.0 | profile" in res.stdout


def test_bootstrap_cell_names_the_repository_and_ref() -> None:
    cell = nbtool.bootstrap_cell("file:///tmp/x", "v9")
    assert '"embedlab @ git+file:///tmp/x@v9"' in cell
    assert nbtool.BOOTSTRAP == nbtool.bootstrap_cell(nbtool.REPO_URL, nbtool.REPO_REF)
    assert nbtool.colab_url("01_x").startswith(
        "https://colab.research.google.com/github/"
        + nbtool.REPO_URL.removeprefix("https://github.com/")
        + f"/blob/{nbtool.REPO_REF}/"
    )


# ------------------------------------------------------------------ slow: a simulated runtime


def _sim_base_venv() -> Path:
    """The cached 'Colab image' venv (built once per content hash; takes about a minute)."""
    from embedlab.config import home_dir

    key = hashlib.sha256(json.dumps([sys.version, COLAB_PREINSTALLED]).encode()).hexdigest()[:16]
    root = home_dir() / "colab-sim"
    root.mkdir(parents=True, exist_ok=True)
    venv = root / key
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            return venv
        build = root / f"{key}.building"
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(venv, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        subprocess.run([base_python, "-m", "venv", str(build)], check=True, env=env)
        pip = [str(build / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, COLAB_PREINSTALLED[0]], check=True, env=env)
        subprocess.run([*pip, *COLAB_PREINSTALLED[1:]], check=True, env=env)
        (build / ".complete").write_text("\n".join(COLAB_PREINSTALLED) + "\n")
        # A venv records its own path: build it where it will stay, so rename before use.
        build.rename(venv)
    return venv


def _copy_venv(base: Path, dest: Path) -> Path:
    """A working copy; ``python -m pip`` resolves its prefix from the copy's location."""
    subprocess.run(["cp", "-a", str(base), str(dest)], check=True)
    return dest


def _local_repo(dest: Path) -> str:
    """A git repository of this working tree (tracked + new files), tagged REPO_REF."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (f.decode() for f in files)):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)
    subprocess.run([*git, "tag", nbtool.REPO_REF], check=True)
    return dest.as_uri()


def _versions(python: Path, names: list[str]) -> dict[str, str]:
    code = "import json,sys;from importlib.metadata import version as v;print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    out = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _dist_info_mtime(venv: Path, name: str) -> float:
    (info,) = (venv / "lib").glob(f"python*/site-packages/{name}-*.dist-info")
    return info.stat().st_mtime


@pytest.mark.slow
def test_colab_simulation_installs_detects_restart_then_runs_notebook_01(
    tmp_path: Path, models_available: None
) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    from embedlab.config import mirror_dir

    t0 = time.monotonic()
    base = _sim_base_venv()
    t_base = time.monotonic() - t0
    venv = _copy_venv(base, tmp_path / "runtime")
    python = venv / "bin" / "python"
    heavy = ["torch", "numpy", "transformers", "sentence-transformers"]
    before = _versions(python, heavy)
    torch_stamp = _dist_info_mtime(venv, "torch")
    repo_url = _local_repo(tmp_path / "repo")
    cell = nbtool.bootstrap_cell(repo_url, nbtool.REPO_REF)

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYTEST", "EMBEDLAB_HOME"))
    }
    env.update(
        PYTHONPATH=str(_fake_colab(tmp_path)),  # nothing of this checkout: it must install
        EMBEDLAB_HOME=str(tmp_path / "home"),  # cold embedding caches
        EMBEDLAB_MIRROR_DIR=str(mirror_dir()),  # the mirror the test process sees
        MPLBACKEND="Agg",
        HOME=str(tmp_path / "home"),
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
    )
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    # 1. A fresh runtime: numpy is already imported, embedlab is not installed.
    t1 = time.monotonic()
    first = _run(str(python), _write_cells(tmp_path / "c1", [cell]), COLAB_PRELOADED, env, tmp_path)
    t_install = time.monotonic() - t1
    after = _versions(python, [*heavy, "embedlab"])
    assert "--- done" not in first.stdout, "the cell went on after replacing numpy"
    assert first.returncode != 0
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("Restart the runtime (Runtime > Restart session)"), first.stderr[-3000:]
    assert f"numpy {before['numpy']} -> {after['numpy']}" in last
    # The install itself succeeded over the older libraries, and kept the preinstalled torch.
    assert after["embedlab"] == "0.1.0"
    for name, major in [("numpy", "2."), ("transformers", "5."), ("sentence-transformers", "6.")]:
        assert after[name].startswith(major), (name, after[name])
    assert after["torch"] == before["torch"]
    assert _dist_info_mtime(venv, "torch") == torch_stamp, "torch was reinstalled"

    # 2. After the restart: the cell installs nothing, then notebook 01's first cells run offline.
    nb = nbformat.read(ROOT / "notebooks" / "01_embeddings_and_similarity.ipynb", as_version=4)
    assert nb.cells[2].source == nbtool.BOOTSTRAP
    code = [c for c in nb.cells[3:] if c.cell_type == "code"][:2]
    t2 = time.monotonic()
    second = _run(
        str(python),
        _write_cells(tmp_path / "c2", [cell, *(c.source for c in code)]),
        COLAB_PRELOADED,
        env,
        tmp_path,
    )
    t_run = time.monotonic() - t2
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "--- done" in second.stdout
    assert "embedlab 0.1.0 | profile fast | offline" in second.stdout
    assert "[fast] models: sentence-transformers/all-MiniLM-L6-v2" in second.stdout
    # The NBVAL_CHECK_OUTPUT cell prints what the committed notebook shows.
    expected = "".join(o.get("text", "") for o in code[1].outputs if o.output_type == "stream")
    assert expected and expected in second.stdout
    assert _versions(python, ["embedlab"])["embedlab"] == "0.1.0"
    print(f"\ncolab sim: first run ended with: {last}")
    print(
        f"colab sim: base venv {t_base:.0f} s, install + restart check {t_install:.0f} s, "
        f"notebook 01 cells {t_run:.0f} s"
    )


def test_stamp_moves_badge_and_bootstrap_to_a_fork(tmp_path: Path, monkeypatch) -> None:
    """A fork sets REPO_URL/REPO_REF and runs `stamp`: badge and install URL follow, outputs stay."""
    slug = "01_embeddings_and_similarity"
    shutil.copy(ROOT / "notebooks" / f"{slug}.ipynb", tmp_path / f"{slug}.ipynb")
    before = nbformat.read(tmp_path / f"{slug}.ipynb", as_version=4)
    fork = "https://github.com/someone/embedlab-fork"
    monkeypatch.setattr(nbtool, "NB_DIR", tmp_path)
    monkeypatch.setattr(nbtool, "REPO_URL", fork)
    monkeypatch.setattr(nbtool, "REPO_REF", "v9.9")
    monkeypatch.setattr(nbtool, "BOOTSTRAP", nbtool.bootstrap_cell(fork, "v9.9"))
    entry = next(e for e in nbtool.COURSE if e.slug == slug)
    nbtool.stamp(entry)
    after = nbformat.read(tmp_path / f"{slug}.ipynb", as_version=4)
    assert f"embedlab @ git+{fork}@v9.9" in after.cells[2].source
    assert f"github/someone/embedlab-fork/blob/v9.9/notebooks/{slug}.ipynb" in after.cells[0].source
    assert after.cells[2].outputs == before.cells[2].outputs
    assert [c.source for c in after.cells[3:]] == [c.source for c in before.cells[3:]]
    assert [d for d in nbtool.differences() if d.startswith(slug)] == []  # matches the fork
