"""Weight checksums of every package training entry point on a tiny slice (about 80 s).

A refactor of the training code must leave the numbers alone. Run this with one tree's
``src`` first on ``PYTHONPATH``, then the other's, and compare:

    PYTHONPATH=/path/a/src python scripts/train_equivalence.py run a.json
    PYTHONPATH=/path/b/src python scripts/train_equivalence.py run b.json
    python scripts/train_equivalence.py compare a.json b.json   # exit 1 above 1e-6

Covers ``train.train`` (SoftmaxLoss with a head rate, TripletLoss), the contrastive runs
(with and without NO_DUPLICATES), ``rerank.fit_cross_encoder``, the pair loop (cross
classify and listwise with frozen layers, bi classify and score) and ``compare_on_task``
(the code path of the sick-nli artifact). Needs the offline mirror (MiniLM) and SICK.
"""

from __future__ import annotations

import json
import sys


def digest(params) -> dict:
    """Sum, absolute sum, first and last 5 values of all parameters (float64)."""
    import torch

    flat = torch.cat([p.detach().double().reshape(-1) for p in params])
    return {
        "sum": float(flat.sum()),
        "abs": float(flat.abs().sum()),
        "first": flat[:5].tolist(),
        "last": flat[-5:].tolist(),
    }


def train_bi(model, s1, s2, target, objective, steps, **kw):
    """The bi-encoder loop under either name: ``train_pairs("bi", ...)`` or the older one."""
    from embedlab import pairtrain as P

    if hasattr(P, "train_pairs"):
        return P.train_pairs("bi", model, s1, s2, target, objective, steps, **kw)
    return P.train_bi_encoder(model, s1, s2, target, objective, steps, **kw)


def trainer_runs(sick) -> dict:
    """train.train twice and the contrastive runs, on the static start."""
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from embedlab import train as T
    from embedlab.config import seed_everything
    from embedlab.models import static_start
    from embedlab.negatives import train_contrastive

    out = {}
    seed_everything(0)
    m = static_start()
    labels = [int(x) for x in sick.target]
    ds = Dataset.from_dict({"sentence1": sick.s1, "sentence2": sick.s2, "label": labels})
    loss = T.make_loss("classification", m)
    r = T.train(m, ds, loss, steps=4, learning_rate=1e-2, head_lr=5e-2, progress=False,
                log_every=1)  # fmt: skip
    out["train.classification"] = digest([*m.parameters(), *loss.classifier.parameters()])
    out["train.classification.losses"] = [x for _, x in r.losses]
    seed_everything(0)
    m = static_start()
    tri = Dataset.from_dict({"anchor": sick.s1[:32], "positive": sick.s2[:32],
                             "negative": sick.s2[32:64]})  # fmt: skip
    T.train(m, tri, T.make_loss("triplet", m), 3, batch_size=8, learning_rate=1e-2, progress=False)
    out["train.triplet"] = digest(m.parameters())
    for nodup in (True, False):
        seed_everything(0)
        m = static_start()
        pairs = Dataset.from_dict({"anchor": sick.s1, "positive": sick.s2})
        loss = MultipleNegativesRankingLoss(m, scale=20)
        train_contrastive(m, pairs, loss, 16, epochs=1.0, lr=5e-2, no_duplicates=nodup)
        out[f"contrastive.nodup={nodup}"] = digest(m.parameters())
    return out


def cross_runs(sick) -> dict:
    """rerank.fit_cross_encoder and the pair loop's cross-encoder objectives."""
    import numpy as np
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder

    from embedlab import pairtrain as P
    from embedlab.config import seed_everything
    from embedlab.models import MINILM
    from embedlab.rerank import fit_cross_encoder
    from embedlab.train import freeze_lower_layers

    out = {}
    seed_everything(0)
    ce = CrossEncoder(MINILM, num_labels=1, max_length=24, device="cpu")
    rows = Dataset.from_dict({"sentence1": sick.s1[:32], "sentence2": sick.s2[:32],
                              "label": [float(x == 0) for x in sick.target[:32]]})  # fmt: skip
    fit_cross_encoder(ce, rows, "bce", batch_size=16, lr=5e-5, head_lr=1e-3)
    out["fit_cross_encoder"] = digest(ce.model.parameters())
    torch.manual_seed(0)
    ce = CrossEncoder(MINILM, num_labels=3, max_length=24, device="cpu")
    probe = (sick.s1[:8], sick.s2[:8])
    log = P.train_cross_encoder(ce, sick.s1, sick.s2, sick.target, "classify", steps=3,
                                eval_every=1,
                                evaluate=lambda: float(P.cross_logits(ce, *probe).sum()))  # fmt: skip
    out["pair.cross.classify"] = digest(ce.model.parameters())
    out["pair.cross.classify.curve"] = log.curve
    torch.manual_seed(0)
    ce = CrossEncoder(MINILM, num_labels=1, max_length=24, device="cpu")
    freeze_lower_layers(ce.transformers_model, 2)  # as the SciFact re-ranker does
    for name, p in ce.transformers_model.named_parameters():
        if "classifier" in name or "pooler" in name:
            p.requires_grad_(True)
    P.train_cross_encoder(ce, sick.s1[:32], sick.s2[:32], np.zeros(32), "listwise", 2,
                          batch_size=8, group_size=4)  # fmt: skip
    out["pair.cross.listwise"] = digest(ce.model.parameters())
    return out


def bi_runs(sick) -> dict:
    """The pair loop's bi-encoder objectives and a tiny compare_on_task."""
    import numpy as np

    from embedlab import pairtrain as P
    from embedlab.models import MINILM, load_model

    out = {}
    bi = load_model(MINILM, max_seq_length=24)
    probe = (sick.s1[:8], sick.s2[:8])
    log, head = train_bi(bi, sick.s1, sick.s2, sick.target, "classify", 3, num_labels=3,
                         eval_every=2,
                         evaluate=lambda h: float(P.bi_predict(bi, h, *probe).sum()))  # fmt: skip
    out["pair.bi.classify"] = digest([*bi.parameters(), *head.parameters()])
    out["pair.bi.classify.curve"] = log.curve
    bi = load_model(MINILM, max_seq_length=24)
    train_bi(bi, sick.s1, sick.s2, np.linspace(0, 1, 64).astype(np.float32), "score", 2)
    out["pair.bi.score"] = digest(bi.parameters())
    evaluation = P.load_pair_task("sick-nli", "test").head(16)
    c = P.compare_on_task("sick-nli", sick.head(32), evaluation, steps=3, batch_size=8,
                          max_length=16, eval_every=1)  # fmt: skip
    out["compare_on_task"] = {"curves": c.curves, "scores": c.scores,
                              "preds": {k: np.asarray(v).tolist() for k, v in c.predictions.items()}}  # fmt: skip
    out["compare_on_task.order"] = [list(c.predictions).index(k) for k in sorted(c.predictions)]
    return out


def run(path: str) -> None:
    import embedlab
    from embedlab.pairtrain import load_pair_task

    embedlab.setup()
    sick = load_pair_task("sick-nli", "train").head(64)
    out = {**trainer_runs(sick), **cross_runs(sick), **bi_runs(sick)}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)


def _flat(x) -> list[float]:
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _flat(x[k])]
    if isinstance(x, list | tuple):
        return [v for y in x for v in _flat(y)]
    return [float(x)]


def compare(a_path: str, b_path: str, tol: float = 1e-6) -> bool:
    """Print the largest relative difference per entry; True when all are <= tol."""
    with open(a_path, encoding="utf-8") as fa, open(b_path, encoding="utf-8") as fb:
        a, b = json.load(fa), json.load(fb)
    if a.keys() != b.keys():
        print("different entries:", sorted(a.keys() ^ b.keys()))
        return False
    worst = 0.0
    for key in a:
        xa, xb = _flat(a[key]), _flat(b[key])
        if len(xa) != len(xb):
            print(f"{key}: different lengths {len(xa)} and {len(xb)}")
            return False
        d = max((abs(x - y) / max(1.0, abs(x)) for x, y in zip(xa, xb, strict=True)), default=0)
        worst = max(worst, d)
        print(f"{key:32s} max relative difference {d:.2e}")
    print(f"worst {worst:.2e}: {'PASS' if worst <= tol else 'FAIL'} (tolerance {tol})")
    return worst <= tol


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"] and len(sys.argv) == 3:
        run(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)
    else:
        sys.exit(__doc__)
