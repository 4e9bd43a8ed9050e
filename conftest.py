"""Repository-wide pytest configuration.

nbval waits only 5 seconds (hard-coded, ``IPyNbCell.output_timeout``) for a cell's
remaining output messages after the kernel replies. A long training or encoding cell
streams hundreds of progress-bar widget messages (notebook 05's training cell: ~1,100),
and draining them took 4 s on an idle 2-core machine, so under load the limit fails a
cell that ran correctly ("Timeout of 5 seconds exceeded waiting for output"). The
cell-execution timeout (``--nbval-cell-timeout``) still bounds a cell that hangs.
"""

from __future__ import annotations

import copy
import re

import pytest

NBVAL_OUTPUT_TIMEOUT = 120  # seconds to drain a finished cell's queued output messages


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if type(item).__name__ == "IPyNbCell" and hasattr(item, "output_timeout"):
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
        if type(item).__name__ == "IPyNbCell" and hasattr(item, "compare_outputs"):
            item.compare_outputs = _comparing_without_progress(item.compare_outputs)


# A progress bar is live feedback, not a result: committed notebooks carry none
# (scripts/notebooks.py strips them), so nbval must not expect the fresh run's bars either.
_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+")


def drop_progress(outputs: list) -> list:
    """Outputs without progress displays (tqdm widgets, bar text) and without bar lines."""
    kept = []
    for out in outputs:
        data = out.get("data", {})
        if out.get("output_type") == "display_data" and (
            "application/vnd.jupyter.widget-view+json" in data
            or _BAR.search("".join(data.get("text/plain", "")))
            or "<progress" in "".join(data.get("text/html", ""))
        ):
            continue
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            out = copy.deepcopy(out)
            lines = [ln.split("\r")[-1] for ln in out["text"].split("\n")]
            out["text"] = "\n".join(ln for ln in lines if not _BAR.search(ln))
            if not out["text"].strip():
                continue
        kept.append(out)
    return kept


def _comparing_without_progress(compare):
    def wrapped(test, ref, skip_compare=None):
        return compare(drop_progress(test), drop_progress(ref), skip_compare)

    return wrapped
