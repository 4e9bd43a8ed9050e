"""Bi- vs cross-encoder on pair tasks: one training loop, same start, data and budget.

SBERT's Table 2 compares a bi-encoder (two passes, then cosine or a classifier over
(u, v, |u - v|)) with a cross-encoder (one pass over "[CLS] a [SEP] b [SEP]", a head on
[CLS]). A fair comparison gives both the same start (the body of one checkpoint), the
same training pairs in the same order, the same steps, batch size and learning rates.
Both new heads (the cross-encoder's classifier, the bi-encoder's SoftmaxLoss classifier)
get their own, larger learning rate ``head_lr``: a randomly initialised head trained at a
body's rate of 5e-5 barely moves in a few hundred steps and predicts the class prior.

Shapes: B batch of pairs, L tokens, D embedding dimension, C classes, G group size
(one positive followed by G - 1 negatives, for the listwise loss).

Tasks (:data:`TASKS`): ``sick-nli`` (SICK entailment, 3 classes, accuracy), ``snli``
(SNLI, 3 classes, accuracy; trained on SNLI's validation split, see :data:`SPLITS`),
``sickr`` (SICK relatedness 1-5 on SICK's own train/validation/test split, Spearman),
``stsb`` (STS-B 0-5, Spearman).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.train import TrainLog, adamw_with_warmup, run_steps, seeded_batches

OBJECTIVES = ("classify", "score", "listwise")
# The tasks notebook 03 reports (and `make artifacts` builds).
NOTEBOOK_TASKS = ("sick-nli", "snli", "sickr", "stsb")
TASKS = {
    # name: (loader, label column, objective, classes, score range)
    "sick-nli": ("sick", "label", "classify", 3, None),
    "snli": ("snli", "label", "classify", 3, None),
    "sickr": ("sick", "score", "score", 1, (1.0, 5.0)),
    "stsb": ("stsb", "score", "score", 1, (0.0, 5.0)),
}
# The local SNLI copy has no train split (see the data README): a task's "train" is SNLI
# validation (9,842 pairs), disjoint from its test split; the same on the Hub, so online
# and offline runs train on the same pairs.
SPLITS = {"snli": {"train": "validation", "test": "test"}}
# Per-task overrides of COMPARISON_SETTINGS: SNLI's gap needs more test pairs to resolve;
# SICK-R and STS-B are scored on every test pair (4,906 and 1,379: fewer than n_test).
TASK_SETTINGS = {"snli": {"n_test": 2000}, "sickr": {"n_test": 5000}, "stsb": {"n_test": 5000}}


@dataclass
class PairData:
    """One split of a pair task: texts, targets for training, gold for evaluation."""

    s1: list[str]
    s2: list[str]
    target: np.ndarray  # (n,) int class ids, or float scores scaled to [0, 1]
    gold: np.ndarray  # (n,) class ids, or the raw gold scores

    def __len__(self) -> int:
        return len(self.s1)

    def head(self, n: int) -> PairData:
        """The first n pairs (splits are shuffled with a seed by :func:`load_pair_task`)."""
        return PairData(self.s1[:n], self.s2[:n], self.target[:n], self.gold[:n])


def load_pair_task(task: str, split: str, seed: int = 0) -> PairData:
    """A split of one of :data:`TASKS`, shuffled with ``seed`` (so ``.head(n)`` is a sample).

    ``split`` is "train", "validation" or "test", mapped through :data:`SPLITS` (SNLI's
    "train" is its validation split, and it has no other validation split here).
    """
    from embedlab.data import load_sick, load_snli, load_stsb

    if task not in TASKS:
        raise ValueError(f"unknown pair task {task!r}; expected one of {sorted(TASKS)}")
    splits = SPLITS.get(task, {"train": "train", "validation": "validation", "test": "test"})
    if split not in splits:
        raise ValueError(f"{task} has splits {sorted(splits)}, not {split!r}")
    source, column, objective, _, rng = TASKS[task]
    ds = {"sick": load_sick, "snli": load_snli, "stsb": load_stsb}[source](splits[split])
    if source == "snli":
        ds = ds.rename_columns({"premise": "sentence1", "hypothesis": "sentence2"})
    order = list(range(len(ds)))
    random.Random(seed).shuffle(order)
    gold = np.asarray(ds[column])[order]
    if objective == "classify":
        target = gold.astype(np.int64)
    else:
        lo, hi = rng
        target = ((gold.astype(np.float32) - lo) / (hi - lo)).clip(0, 1)
    s1, s2 = ds["sentence1"], ds["sentence2"]
    return PairData([s1[i] for i in order], [s2[i] for i in order], target, gold)


def metric(task: str, predicted: np.ndarray, gold: np.ndarray) -> float:
    """Accuracy x 100 (classify) or Spearman x 100 (score) of predictions against gold."""
    from embedlab.evaluate import spearman

    if TASKS[task][2] == "classify":
        return 100 * float((np.asarray(predicted).argmax(axis=1) == gold).mean())
    return 100 * spearman(np.asarray(predicted).reshape(-1), gold)


def per_item(task: str, predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per-pair 0/1 correctness (classify), or the scores themselves (for Spearman)."""
    if TASKS[task][2] == "classify":
        return (np.asarray(predicted).argmax(axis=1) == gold).astype(float)
    return np.asarray(predicted, dtype=float).reshape(-1)


# ------------------------------------------------------------------ inputs of the shared loop


def _check_loop(n: int, steps: int, batch_size: int, group_size: int) -> None:
    if n == 0:
        raise ValueError("no training pairs: need at least one")
    if steps < 1 or batch_size < 1 or group_size < 1:
        raise ValueError(
            f"steps, batch_size and group_size must be >= 1, got {steps}, {batch_size}, "
            f"{group_size}"
        )
    if n % group_size or batch_size % group_size:
        raise ValueError(
            f"rows ({n}) and batch_size ({batch_size}) must be multiples of group_size "
            f"({group_size}): each group is one positive then its negatives"
        )


# ------------------------------------------------------------------ cross-encoder


def cross_logits(model, s1: Sequence[str], s2: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, C) raw head outputs of a CrossEncoder for n pairs (no sigmoid / softmax)."""
    out = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(s1), batch_size):
            out.append(_cross_forward(model, s1[i : i + batch_size], s2[i : i + batch_size]))
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_labels), np.float32)


def _cross_forward(model, a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
    """(B, C) logits: one joint pass over "[CLS] a [SEP] b [SEP]" per pair."""
    enc = model.tokenizer(
        list(a),
        list(b),
        padding=True,
        truncation="longest_first",
        max_length=model.max_seq_length,
        return_tensors="pt",
    )
    return model.transformers_model(**enc).logits.float()


def head_parameters(model) -> tuple[list, list]:
    """(body, head) parameters of a CrossEncoder: the head is the classifier (+ pooler)."""
    body, head = [], []
    for name, p in model.transformers_model.named_parameters():
        (head if ("classifier" in name or "pooler" in name) else body).append(p)
    return body, head


# ------------------------------------------------------------------ bi-encoder


def _bi_embed(model, texts: Sequence[str]) -> torch.Tensor:
    """(B, D) mean-pooled token states of a SentenceTransformer (MiniLM's pooling)."""
    tr = model[0]
    enc = model.tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        max_length=model.max_seq_length,
        return_tensors="pt",
    )
    tokens = tr.auto_model(**enc).last_hidden_state  # (B, L, D)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def bi_predict(model, head, s1: Sequence[str], s2: Sequence[str], bs: int = 64) -> np.ndarray:
    """(n, C) classifier logits over (u, v, |u - v|) when ``head`` is given, else (n,) cosines."""
    out = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(s1), bs):
            u, v = _bi_embed(model, s1[i : i + bs]), _bi_embed(model, s2[i : i + bs])
            out.append(
                head(torch.cat([u, v, (u - v).abs()], 1)) if head else F.cosine_similarity(u, v)
            )
    model.train(was_training)
    return torch.cat(out).numpy()


# ------------------------------------------------------------------ one loop, both kinds

KINDS = ("cross", "bi")


def _check_pairs(kind: str, objective: str, s1, s2, target, steps: int, batch_size: int,
                 group_size: int) -> torch.Tensor:  # fmt: skip
    """The (n,) target tensor, after checking every input of :func:`train_pairs`."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    if kind == "bi" and objective not in ("classify", "score"):
        raise ValueError(f"objective={objective!r}; a bi-encoder takes 'classify' or 'score'")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}; expected one of {OBJECTIVES}")
    y = torch.as_tensor(np.asarray(target))
    if len(s1) != len(s2) or len(s1) != len(y):
        raise ValueError(f"need one target per pair, got {len(s1)}, {len(s2)}, {len(y)}")
    _check_loop(len(s1), steps, batch_size, group_size if objective == "listwise" else 1)
    if objective == "listwise" and group_size < 2:
        raise ValueError("the listwise loss needs group_size >= 2 (a positive and a negative)")
    return y


def _cross_setup(model, objective: str, s1, s2, y: torch.Tensor, group_size: int, _labels):
    """(body params, head params, no head module, step loss) of a CrossEncoder."""
    body, head = head_parameters(model)

    def step_loss(idx: np.ndarray) -> torch.Tensor:
        logits = _cross_forward(model, [s1[i] for i in idx], [s2[i] for i in idx])
        if objective == "classify":
            return F.cross_entropy(logits, y[idx].long())
        if objective == "score":
            return F.binary_cross_entropy_with_logits(logits[:, 0], y[idx].float())
        groups = logits[:, 0].view(-1, group_size)  # (B / G, G), positive first
        return F.cross_entropy(groups, torch.zeros(len(groups), dtype=torch.long))

    return body, head, None, step_loss


def _bi_setup(model, objective: str, s1, s2, y: torch.Tensor, _group, num_labels: int):
    """(body params, head params, head, step loss) of a bi-encoder: a new linear head over
    (u, v, |u - v|) for classify (SoftmaxLoss), none for score (CosineSimilarityLoss)."""
    dim = model.get_embedding_dimension()
    head = torch.nn.Linear(3 * dim, num_labels) if objective == "classify" else None

    def step_loss(idx: np.ndarray) -> torch.Tensor:
        u, v = _bi_embed(model, [s1[i] for i in idx]), _bi_embed(model, [s2[i] for i in idx])
        if head is not None:
            logits = head(torch.cat([u, v, (u - v).abs()], 1))
            return F.cross_entropy(logits, y[idx].long())
        return F.mse_loss(F.cosine_similarity(u, v), y[idx].float())

    return list(model.parameters()), list(head.parameters()) if head else [], head, step_loss


def train_pairs(
    kind: str,
    model,
    s1: Sequence[str],
    s2: Sequence[str],
    target: Sequence[float] | np.ndarray,
    objective: str,
    steps: int,
    batch_size: int = 16,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    seed: int = 0,
    group_size: int = 1,
    num_labels: int = 3,
    warmup: float = 0.1,
    eval_every: int = 0,
    evaluate: Callable[[object], float] | None = None,
) -> tuple[TrainLog, torch.nn.Module | None]:
    """Fine-tune a cross-encoder (``kind="cross"``) or bi-encoder (``"bi"``) in place.

    One loop for both (:func:`embedlab.train.run_steps`): the same seeded batches of
    ``batch_size`` pairs, AdamW with the body at ``lr`` and a new head at ``head_lr``,
    ``warmup`` linear warm-up then linear decay, gradient norm clipped at 1.
    Cross-encoder (``CrossEncoder``, C = ``model.num_labels`` outputs): ``classify`` is
    cross-entropy over the classes (int targets); ``score`` binary cross-entropy of the
    single logit against a target in [0, 1] (soft labels: STS score / 5); ``listwise``
    takes rows in groups of ``group_size`` (one positive, then its negatives) and gives
    each group's logits a softmax cross-entropy with the positive as the answer (a ranking
    loss: the head cannot collapse onto the class prior). Its head is the classifier
    (+ pooler). Bi-encoder (``SentenceTransformer``, mean pooling): ``classify`` trains a
    new linear head over (u, v, |u - v|) -> ``num_labels`` classes; ``score`` regresses
    cos(u, v) on the target (MSE, no head).
    ``evaluate(head)`` (no-grad, eval mode) runs every ``eval_every`` steps and at the end.
    Returns: (TrainLog, the bi-encoder's head or None). Leaves out: mixed precision,
    gradient accumulation. Production equivalent: ``CrossEncoderTrainer`` /
    ``SentenceTransformerTrainer`` with ``CrossEntropyLoss`` / ``BinaryCrossEntropyLoss`` /
    ``ListNetLoss`` / ``SoftmaxLoss`` / ``CosineSimilarityLoss`` and
    ``learning_rate_mapping`` for the head.
    """
    y = _check_pairs(kind, objective, s1, s2, target, steps, batch_size, group_size)
    torch.manual_seed(seed)
    setup = _cross_setup if kind == "cross" else _bi_setup
    body, head_params, head, step_loss = setup(model, objective, s1, s2, y, group_size, num_labels)
    optimizer = adamw_with_warmup(body, head_params, lr, head_lr, steps, warmup)
    group = group_size if objective == "listwise" else 1
    batches = seeded_batches(len(s1), batch_size, steps, seed, group)
    params = [p for p in body + head_params if p.requires_grad]
    check = (lambda: evaluate(head)) if evaluate else None
    log = run_steps(model, step_loss, optimizer, batches, params, eval_every, check)
    return log, head


def train_cross_encoder(model, s1, s2, target, objective: str, steps: int,
                        evaluate: Callable[[], float] | None = None, **settings) -> TrainLog:  # fmt: skip
    """:func:`train_pairs` with ``kind="cross"``, ``evaluate()`` taking no argument.

    The name notebook 03 and :func:`embedlab.rerank.train_scifact_reranker` call;
    ``settings`` are :func:`train_pairs`' keywords. Returns: the TrainLog.
    """
    check = (lambda _head: evaluate()) if evaluate else None
    return train_pairs("cross", model, s1, s2, target, objective, steps, evaluate=check,
                       **settings)[0]  # fmt: skip


# ------------------------------------------------------------------ one task, both models


def pair_predict(kind: str, model, head, pairs: PairData) -> np.ndarray:
    """(n, C) logits of a cross-encoder, or a bi-encoder's (n, C) head logits / (n,) cosines."""
    if kind == "cross":
        return cross_logits(model, pairs.s1, pairs.s2)
    return bi_predict(model, head, pairs.s1, pairs.s2)


def _score(task: str, kind: str, model, pairs: PairData, head) -> float:
    """The task's metric of the model (and head) on ``pairs``: a learning-curve point."""
    return metric(task, pair_predict(kind, model, head, pairs), pairs.gold)


def _pair_start(kind: str, start: str, classes: int, max_length: int, seed: int):
    """The model a comparison trains: a CrossEncoder with a new head of ``classes``
    outputs (drawn with ``seed``), or the SentenceTransformer of the same checkpoint."""
    from sentence_transformers.cross_encoder import CrossEncoder

    from embedlab.models import load_model

    if kind == "bi":
        return load_model(start, max_seq_length=max_length)
    torch.manual_seed(seed)
    return CrossEncoder(start, num_labels=classes, max_length=max_length, device="cpu")


@dataclass
class PairComparison:
    """Both models on one task: curves on the evaluation pairs and their predictions."""

    task: str
    n_train: int
    steps: int
    curves: dict[str, list[tuple[int, float]]]
    seconds: dict[str, float]
    predictions: dict[str, np.ndarray]  # (n_eval, C) or (n_eval,)
    scores: dict[str, float]


def compare_on_task(
    task: str,
    train: PairData,
    evaluation: PairData,
    steps: int,
    batch_size: int = 16,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    max_length: int = 64,
    eval_every: int = 0,
    seed: int = 0,
    start: str | None = None,
    final: PairData | None = None,
) -> PairComparison:
    """Train a bi- and a cross-encoder from the same checkpoint with the same budget.

    Both see ``train``'s pairs in the same seeded order for ``steps`` steps of
    ``batch_size``, at body rate ``lr`` and head rate ``head_lr``, texts truncated to
    ``max_length`` tokens (the cross-encoder's pair; each bi-encoder side gets the same
    cap). Scores on ``evaluation`` (accuracy or Spearman x 100) every ``eval_every`` steps;
    the returned predictions and scores are on ``final`` (default ``evaluation``).
    """
    from embedlab.models import MINILM

    start, final = start or MINILM, final or evaluation
    objective, classes = TASKS[task][2:4]
    curves, seconds, preds = {}, {}, {}
    for kind in KINDS:  # cross first: its start is drawn right after torch.manual_seed(seed)
        model = _pair_start(kind, start, classes, max_length, seed)
        log, head = train_pairs(
            kind, model, train.s1, train.s2, train.target, objective, steps,
            batch_size=batch_size, lr=lr, head_lr=head_lr, seed=seed, num_labels=classes,
            eval_every=eval_every,
            evaluate=functools.partial(_score, task, kind, model, evaluation),
        )  # fmt: skip
        name = f"{kind}-encoder"
        preds[name] = pair_predict(kind, model, head, final)
        curves[name], seconds[name] = log.curve, log.seconds
    scores = {k: metric(task, p, final.gold) for k, p in preds.items()}
    return PairComparison(task, len(train), steps, curves, seconds, preds, scores)


# ------------------------------------------------------------------ the cached build

COMPARISON_SETTINGS = {
    "version": 1,
    # x batch 16 = 4,432 pairs: one epoch of SICK train (4,439), the same for both models;
    # at 80 steps the cross-encoder's new head had not caught up with the bi-encoder yet
    "steps": 277,
    "batch_size": 16,
    "lr": 5e-5,
    # checked on validation splits only (scripts/pair_dev_sweep.py -> data/pair_dev_sweep.json):
    # 3e-4, 1e-3 and 3e-3 land within 2 points of each other for every new head (SICK's
    # 495 validation pairs, noise of about that size; STS-B's 1,500), so 1e-3 stays
    "head_lr": 1e-3,
    "max_length": 64,
    "n_test": 1000,  # seeded test pairs scored at the end (all of them when fewer)
    "n_curve": 200,  # the first of those, scored every eval_every steps for the curve
    "eval_every": 40,
    "seed": 0,
}


def comparison_key(task: str, settings: dict) -> str:
    """Cache file stem: the task and a content hash of every setting."""
    from embedlab.common import settings_key

    return f"pair-{task}-{settings_key({'task': task, **settings})}"


def _read_json(path):
    """The JSON object stored at ``path``, or None (absent, or unreadable: deleted)."""
    import json

    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        path.unlink(missing_ok=True)  # a damaged artifact is a miss, rebuilt below
        return None
    return d if isinstance(d, dict) else None


def cached_comparison(task: str, settings: dict | None = None) -> PairComparison:
    """:func:`compare_on_task` on a task's train / test splits, cached once built.

    The result (curves, seconds, test predictions) is stored as a JSON file under
    :func:`embedlab.config.artifacts_dir`, written atomically by
    :func:`embedlab.cache.atomic_write`; ``make artifacts`` builds :data:`NOTEBOOK_TASKS`.
    The learning curve is scored on the first ``n_curve`` test pairs. Settings are
    :data:`COMPARISON_SETTINGS`, then the task's :data:`TASK_SETTINGS`, then ``settings``.
    """
    import json

    from embedlab.cache import atomic_write
    from embedlab.config import artifacts_dir

    cfg = {**COMPARISON_SETTINGS, **TASK_SETTINGS.get(task, {}), **(settings or {})}
    path = artifacts_dir() / f"{comparison_key(task, cfg)}.json"
    if (d := _read_json(path)) is not None:
        preds = {k: np.asarray(v) for k, v in d["predictions"].items()}
        curves = {k: [tuple(x) for x in v] for k, v in d["curves"].items()}
        return PairComparison(
            task, d["n_train"], d["steps"], curves, d["seconds"], preds, d["scores"]
        )
    train = load_pair_task(task, "train", cfg["seed"])
    test = load_pair_task(task, "test", cfg["seed"])
    n_train = min(len(train), cfg["steps"] * cfg["batch_size"])
    test = test.head(min(len(test), cfg["n_test"]))
    curve_part = test.head(cfg["n_curve"])
    c = compare_on_task(
        task,
        train.head(n_train),
        curve_part,
        cfg["steps"],
        cfg["batch_size"],
        cfg["lr"],
        cfg["head_lr"],
        cfg["max_length"],
        cfg["eval_every"],
        cfg["seed"],
        final=test,
    )
    d = {
        "n_train": c.n_train,
        "steps": c.steps,
        "curves": c.curves,
        "seconds": c.seconds,
        "predictions": {k: v.tolist() for k, v in c.predictions.items()},
        "scores": c.scores,
    }
    atomic_write(path, lambda f: f.write(json.dumps(d).encode()))
    return c


if __name__ == "__main__":  # python -m embedlab.pairtrain build: part of `make artifacts`
    import sys

    import embedlab

    embedlab.setup()
    if sys.argv[1:2] != ["build"] or not set(sys.argv[2:]) <= set(TASKS):
        raise SystemExit(f"usage: python -m embedlab.pairtrain build [{' | '.join(TASKS)} ...]")
    for name in sys.argv[2:] or NOTEBOOK_TASKS:
        t0 = time.perf_counter()
        built = cached_comparison(name)
        print(f"{name}: {built.scores} ({time.perf_counter() - t0:.0f} s)")
