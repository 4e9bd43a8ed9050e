"""``python -m embedlab doctor``: what is set up, what is missing, one fix per problem.

Prints, in a few lines: the profile and why; offline on or off; the model mirror (which
models, exact or dequantized, sha256 of every file checked against ``manifest.json``);
the data folder and which datasets it holds; the cache size; the versions of torch,
transformers and sentence-transformers; whether installed versions match the pins
(``constraints.txt`` in a source checkout, else the package's own ranges); free memory.
Every problem is printed with a fix in one line. Exit status 1 when there is a problem.

It reads configuration and registries from :mod:`embedlab.config`, :mod:`embedlab.offline`
and :mod:`embedlab.data`; it changes nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from embedlab import config

VERSIONS = ("torch", "transformers", "sentence-transformers")
LOW_MEMORY_GIB = 4.0  # a rule of thumb for the training notebooks, not a measured peak
# A source checkout: src/embedlab/doctor.py -> the repository root holds constraints.txt.
CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


@dataclass
class Report:
    """Lines to print and problems, each ``(what is wrong, the one-line fix)``."""

    lines: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append(f"{label:<9} {text}")

    def problem(self, what: str, fix: str) -> None:
        self.problems.append((what, fix))

    def render(self) -> str:
        out = list(self.lines)
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += [f"  ✗ {what}\n    fix: {fix}" for what, fix in self.problems]
        else:
            out.append("no problems found")
        return "\n".join(out)


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = Path(root, f)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def human(n: float) -> str:
    """Bytes as ``'1.2 GB'`` (powers of 1000, as ``du --si``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# ------------------------------------------------------------------------------ checks


def check_profile(r: Report) -> None:
    raw = os.environ.get("EMBEDLAB_PROFILE", "").strip()
    try:
        name = config.profile().name
    except ValueError:
        r.add("profile", f"invalid EMBEDLAB_PROFILE={raw!r}")
        r.problem(f"EMBEDLAB_PROFILE={raw!r} is not a profile", "export EMBEDLAB_PROFILE=fast")
        return
    gpu = "a CUDA GPU" if config._cuda_available() else "no CUDA GPU"
    why = f"EMBEDLAB_PROFILE={raw}; {gpu}" if raw else f"the default with {gpu}"
    r.add("profile", f"{name} ({why})")


def check_offline(r: Report) -> None:
    if config.is_offline():
        r.add("offline", "on (EMBEDLAB_OFFLINE=1): models from the mirror, data from the folder")
    else:
        r.add("offline", "off: models and datasets load from the Hugging Face Hub")


def check_mirror(r: Report, verify: bool = True) -> None:
    """Manifest entries vs the models the course needs, and every file's size and sha256."""
    from embedlab import offline
    from embedlab.offline.runtime import sha256

    dest = config.mirror_dir()
    needed = list(offline.MIRROR_IDS)
    manifest = offline.read_manifest(dest)["models"]
    if not manifest:
        r.add("mirror", f"{dest}: none (needed only offline)")
        if config.is_offline():
            r.problem(f"offline mode is on but the model mirror {dest} is empty", "make offline")
        return
    checked = "sha256 verified" if verify else "sizes checked (--quick)"
    details, bad = [], 0
    for hub_id in needed:
        entry = manifest.get(hub_id)
        if entry is None:
            details.append(f"  {hub_id}: missing")
            r.problem(f"model {hub_id} is not in the mirror {dest}", "make offline")
            continue
        weights = entry.get("weights", "exact" if entry.get("exact") else "dequantized")
        if entry.get("quant_format"):
            weights += f" from {entry['quant_format']}"
        snap = offline.snapshot_dir(dest, hub_id)
        broken = []
        for rel, info in entry.get("files", {}).items():
            path = snap / rel if snap else None
            if path is None or not path.is_file() or path.stat().st_size != info["size"]:
                broken.append(f"{rel} missing or wrong size")
            elif verify and sha256(path) != info["sha256"]:
                broken.append(f"{rel} sha256 differs from manifest.json")
        state = "ok" if not broken else "BROKEN"
        pkg = f"{entry.get('package')}=={entry.get('version')}"
        n = len(entry.get("files", {}))
        details.append(f"  {hub_id}: {weights}, from {pkg}, {n} files {state}")
        if broken:
            bad += 1
            folder = dest / "hub" / offline.repo_folder(hub_id)
            r.problem(f"{hub_id}: {'; '.join(broken[:3])}", f"rm -rf {folder} && make offline")
    n_ok = len(needed) - bad - sum(h not in manifest for h in needed)
    r.add("mirror", f"{dest}: {n_ok}/{len(needed)} models ok, {checked}")
    r.lines += [f"{'':<9} {d.strip()}" for d in details]


def _dataset_files(name: str, splits: tuple[str, ...]) -> list[str]:
    if name == "scifact":  # BEIR layout
        return ["corpus.jsonl", "queries.jsonl", *(f"qrels/{s}.tsv" for s in splits)]
    return [f"{s}.jsonl" for s in splits]


def check_data(r: Report, registry: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> None:
    """Which datasets ``EMBEDLAB_DATA_DIR`` holds; ``registry``: name -> (folder, splits)."""
    if registry is None:
        from embedlab.data import DATASETS

        registry = {n: (s.folder, s.splits) for n, s in DATASETS.items()}
    root = config.data_dir()
    if root is None:
        r.add("data", "EMBEDLAB_DATA_DIR not set: datasets load from the Hub")
        if config.is_offline():
            r.problem(
                "offline mode is on but EMBEDLAB_DATA_DIR is not set",
                "export EMBEDLAB_DATA_DIR=/path/to/shared/data",
            )
        return
    present, missing = [], []
    for name, (folder, splits) in registry.items():
        lacking = [f for f in _dataset_files(name, splits) if not (root / folder / f).is_file()]
        (missing if lacking else present).append(name)
        if lacking:
            r.problem(
                f"dataset {name}: {root / folder} lacks {', '.join(lacking)}",
                f"copy shared/data/{folder}/ into {root}/ (layout: shared/data/README.md)",
            )
    text = f"{root}: {', '.join(present) or 'no datasets'}"
    r.add("data", text + (f" | missing: {', '.join(missing)}" if missing else ""))


def check_cache(r: Report) -> None:
    home, mirror = config.home_dir(), config.mirror_dir()
    if not home.exists():
        r.add("cache", f"{home}: empty")
        return
    parts = sorted(((_size(p), p.name) for p in home.iterdir() if p.is_dir()), reverse=True)
    total = _size(home)
    top = ", ".join(f"{name} {human(n)}" for n, name in parts[:4])
    where = "" if mirror.resolve().is_relative_to(home.resolve()) else "; mirror elsewhere"
    r.add("cache", f"{home}: {human(total)}" + (f" ({top}{where})" if top else ""))


def _installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def check_versions(r: Report) -> None:
    r.add("versions", ", ".join(f"{d} {_installed(d) or 'not installed'}" for d in VERSIONS))


def read_pins(path: Path) -> list[Requirement]:
    """Requirements of a constraints file (comments and blank lines skipped)."""
    reqs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                reqs.append(Requirement(line))
            except InvalidRequirement as e:
                raise ValueError(f"{path}: {line!r} is not a requirement ({e})") from None
    return reqs


def mismatches(reqs: list[Requirement], required: set[str] = frozenset()) -> list[str]:
    """``"name installed X, wants SPEC"`` for each requirement the environment misses.

    A requirement whose package is not installed counts only if its name is in
    ``required`` (optional extras such as mteb may be absent).
    """
    out = []
    for req in reqs:
        have = _installed(req.name)
        if have is None:
            if _norm(req.name) in required:
                out.append(f"{req.name} not installed, wants {req.specifier}")
            continue
        try:
            ok = req.specifier.contains(Version(have), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            out.append(f"{req.name} {have} installed, wants {req.specifier}")
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_requirements() -> list[Requirement]:
    """embedlab's own requirements (no extras): ranges, as pip resolved them."""
    reqs = [Requirement(s) for s in md.requires("embedlab") or []]
    return [q for q in reqs if q.marker is None or q.marker.evaluate({"extra": ""})]


def check_pins(r: Report, constraints: Path | None = CONSTRAINTS) -> None:
    try:
        ranges = _package_requirements()
    except md.PackageNotFoundError:
        r.add("pins", "embedlab is not installed")
        r.problem("embedlab is not installed", 'pip install -c constraints.txt -e ".[dev]"')
        return
    required = {_norm(q.name) for q in ranges}
    wrong_ranges = mismatches(ranges, required)
    for m in wrong_ranges:
        r.problem(
            f"{m} (embedlab's requirement)",
            'make install (pip install -c constraints.txt -e ".[dev]")',
        )
    if constraints is not None and constraints.is_file():
        pins = read_pins(constraints)
        wrong = mismatches(pins, required)
        n = sum(_installed(p.name) is not None for p in pins)
        r.add("pins", f"{n - len(wrong)}/{n} installed versions match {constraints.name}")
        for m in wrong:
            r.problem(
                f"{m} ({constraints.name})",
                'make install (pip install -c constraints.txt -e ".[dev]")',
            )
    else:
        ok = len(ranges) - len(wrong_ranges)
        r.add("pins", f"{ok}/{len(ranges)} requirements in range (no constraints.txt here)")


def check_memory(r: Report, meminfo: Path = Path("/proc/meminfo")) -> None:
    try:
        info = dict(line.split(":", 1) for line in meminfo.read_text().splitlines())
        avail = int(info["MemAvailable"].split()[0]) / 2**20  # kB -> GiB
        total = int(info["MemTotal"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):
        return  # not Linux: say nothing rather than guess
    r.add("memory", f"{avail:.1f} GiB available of {total:.1f} GiB")
    if avail < LOW_MEMORY_GIB:
        r.problem(
            f"only {avail:.1f} GiB of memory available (under {LOW_MEMORY_GIB:.0f} GiB, training cells may be killed)",
            "close other kernels (Kernel > Shut Down All Kernels) and use EMBEDLAB_PROFILE=fast",
        )


def run(verify: bool = True) -> Report:
    """Every check, in the order printed."""
    from embedlab import __version__

    r = Report()
    r.lines.append(f"embedlab {__version__} doctor")
    check_profile(r)
    check_offline(r)
    check_mirror(r, verify=verify)
    check_data(r)
    check_cache(r)
    check_versions(r)
    check_pins(r)
    check_memory(r)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m embedlab doctor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="check file sizes, skip sha256")
    args = parser.parse_args(argv)
    report = run(verify=not args.quick)
    print(report.render())
    return 1 if report.problems else 0
