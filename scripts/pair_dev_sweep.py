"""Dev check of the pair comparison's head learning rate, on validation splits only.

Notebook 03's bi- vs cross-encoder runs (``embedlab.pairtrain.COMPARISON_SETTINGS``) give
each new head its own rate, ``head_lr``. This script trains each new head at three rates
with every other setting as in the cached build, and scores it on the task's
*validation* split (SICK entailment: accuracy on 495 pairs; STS-B: Spearman on 1,500),
never on test. The bi-encoder on STS-B has no new head (cosine regression), so it is
not swept. It writes ``data/pair_dev_sweep.json``; about 18 minutes on 2 CPU cores.

    python scripts/pair_dev_sweep.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import embedlab
from embedlab.cache import atomic_write
from embedlab.models import MINILM
from embedlab.pairtrain import (
    COMPARISON_SETTINGS,
    TASKS,
    _pair_start,
    _score,
    load_pair_task,
    train_pairs,
)

OUT = Path(__file__).resolve().parents[1] / "data" / "pair_dev_sweep.json"
HEAD_LRS = (3e-4, 1e-3, 3e-3)
RUNS = (("sick-nli", "cross"), ("sick-nli", "bi"), ("stsb", "cross"))


def dev_score(task: str, kind: str, head_lr: float) -> float:
    """Validation metric x 100 after the cached build's budget at ``head_lr``."""
    cfg = COMPARISON_SETTINGS
    objective, classes = TASKS[task][2:4]
    train = load_pair_task(task, "train", cfg["seed"])
    train = train.head(min(len(train), cfg["steps"] * cfg["batch_size"]))
    val = load_pair_task(task, "validation", cfg["seed"])
    model = _pair_start(kind, MINILM, classes, cfg["max_length"], cfg["seed"])
    _, head = train_pairs(
        kind, model, train.s1, train.s2, train.target, objective, cfg["steps"],
        batch_size=cfg["batch_size"], lr=cfg["lr"], head_lr=head_lr, seed=cfg["seed"],
        num_labels=classes,
    )  # fmt: skip
    return round(_score(task, kind, model, val, head), 2)


def main() -> None:
    embedlab.setup()
    rows = []
    for task, kind in RUNS:
        for head_lr in HEAD_LRS:
            t0 = time.perf_counter()
            score = dev_score(task, kind, head_lr)
            rows.append({"task": task, "kind": kind, "head_lr": head_lr, "validation": score})
            print(f"{task} {kind}-encoder head_lr {head_lr:g}: {score} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    out = {"settings": COMPARISON_SETTINGS, "rows": rows}
    atomic_write(OUT, lambda f: f.write((json.dumps(out, indent=1) + "\n").encode()))


if __name__ == "__main__":
    main()
