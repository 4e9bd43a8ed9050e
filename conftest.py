"""Repository-wide pytest configuration.

nbval waits only 5 seconds (hard-coded, ``IPyNbCell.output_timeout``) for a cell's
remaining output messages after the kernel replies. A long training or encoding cell
streams hundreds of progress-bar widget messages (notebook 05's training cell: ~1,100),
and draining them took 4 s on an idle 2-core machine, so under load the limit fails a
cell that ran correctly ("Timeout of 5 seconds exceeded waiting for output"). The
cell-execution timeout (``--nbval-cell-timeout``) still bounds a cell that hangs.
"""

from __future__ import annotations

import pytest

NBVAL_OUTPUT_TIMEOUT = 120  # seconds to drain a finished cell's queued output messages


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if type(item).__name__ == "IPyNbCell" and hasattr(item, "output_timeout"):
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
