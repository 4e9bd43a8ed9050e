"""Training helpers: SBERT's objectives, their input formats, and a short trainer run.

SBERT (Reimers & Gurevych 2019, section 3) trains one siamese encoder with three
objectives. Each needs its own input columns, which :func:`to_objective_format` builds
from our loaders' rows:

===============  =====================================  ======================  ==============
objective        columns (in this order)                from                    loss
===============  =====================================  ======================  ==============
classification   sentence1, sentence2, label (int 0-2)  SNLI / SICK pairs       SoftmaxLoss
regression       sentence1, sentence2, label (0-1)      STS-B / SICK scores /5  CosineSimilarity
triplet          anchor, positive, negative             NLI premise + ent/con   TripletLoss
===============  =====================================  ======================  ==============

sentence-transformers passes every column but ``label``/``score`` to the model in
order, and the label column to the loss. :func:`train` wraps ``SentenceTransformerTrainer``
for a step budget scaled by the profile (``profile().train_steps_scale``), quiet (no
reports, no checkpoints, one progress bar) and seeded.

This module owns training for the whole package:

- one trainer setup: :func:`training_args` (quiet, seeded, 10% warm-up) +
  :func:`quiet_trainer_class` + :func:`fit`, used by :func:`train`, the contrastive runs
  (``negatives.train_contrastive``) and ``rerank.fit_cross_encoder``;
- one hand-written loop for what the trainer does not fit as is (a bi-encoder's outside
  head, a listwise cross-encoder loss): :func:`seeded_batches`,
  :func:`adamw_with_warmup`, :func:`run_steps`, used by ``pairtrain.train_pairs``;
- one "trained once, then loaded" cache: :func:`cached_model`.

Shapes: B batch, D embedding dimension, C classes.
"""

from __future__ import annotations

import functools
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset

from embedlab.config import profile

OBJECTIVES = ("classification", "regression", "triplet")
_COLUMNS = {
    "classification": ["sentence1", "sentence2", "label"],
    "regression": ["sentence1", "sentence2", "label"],
    "triplet": ["anchor", "positive", "negative"],
}
_NLI = {"entailment": 0, "neutral": 1, "contradiction": 2}


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")


def _pair_columns(ds: Dataset) -> tuple[str, str]:
    """The two text columns of an NLI/STS table: premise/hypothesis or sentence1/sentence2."""
    for a, b in (("premise", "hypothesis"), ("sentence1", "sentence2")):
        if a in ds.column_names and b in ds.column_names:
            return a, b
    raise ValueError(
        f"dataset has columns {ds.column_names}; expected premise/hypothesis (SNLI) or "
        "sentence1/sentence2 (SICK, STS-B)"
    )


def _require(ds: Dataset, column: str, objective: str) -> None:
    if len(ds) == 0:
        raise ValueError(f"empty dataset: nothing to turn into {objective} examples")
    if column not in ds.column_names:
        raise ValueError(f"{objective} needs a {column!r} column; dataset has {ds.column_names}")


def to_classification(ds: Dataset) -> Dataset:
    """NLI rows -> (sentence1, sentence2, label): SBERT's classification input.

    Args:
        ds: SNLI (premise, hypothesis, label) or SICK (sentence1, sentence2, label) rows,
            label 0 entailment / 1 neutral / 2 contradiction.
    Returns: a Dataset with columns sentence1, sentence2, label (int), one row per pair.
    Production equivalent: ``sentence-transformers/all-nli``, config ``pair-class``.
    """
    _require(ds, "label", "classification")
    a, b = _pair_columns(ds)
    labels = [int(x) for x in ds["label"]]
    if not set(labels) <= {0, 1, 2}:
        raise ValueError(f"NLI labels must be 0/1/2, found {sorted(set(labels))}")
    return Dataset.from_dict({"sentence1": ds[a], "sentence2": ds[b], "label": labels})


def to_regression(ds: Dataset, max_score: float = 5.0) -> Dataset:
    """Scored pairs -> (sentence1, sentence2, label = score / max_score): regression input.

    CosineSimilarityLoss regresses cos(u, v) on the label, so gold scores are scaled to
    [0, 1] (STS-B 0-5 -> 0-1; SICK's 1-5 becomes 0.2-1, a cosine range we accept).
    Returns: a Dataset with columns sentence1, sentence2, label (float).
    Production equivalent: ``sentence-transformers/stsb`` (already scaled to 0-1).
    """
    _require(ds, "score", "regression")
    if not max_score > 0:
        raise ValueError(f"max_score must be > 0, got {max_score}")
    a, b = _pair_columns(ds)
    scores = [float(s) / max_score for s in ds["score"]]
    if min(scores) < 0 or max(scores) > 1:
        raise ValueError(f"score / max_score must lie in [0, 1]; got {min(scores)}..{max(scores)}")
    return Dataset.from_dict({"sentence1": ds[a], "sentence2": ds[b], "label": scores})


def to_triplets(ds: Dataset, seed: int = 0) -> Dataset:
    """NLI rows -> (anchor, positive, negative) triplets, as SBERT builds them.

    The anchor is a premise, the positive one of its entailment hypotheses, the negative
    one of its contradiction hypotheses; premises lacking either are skipped, neutral
    hypotheses are not used. One triplet per premise (first entailment x a seeded choice
    of contradiction), in the order premises first appear.
    Returns: a Dataset with columns anchor, positive, negative.
    Production equivalent: ``sentence-transformers/all-nli``, config ``triplet``.
    """
    _require(ds, "label", "triplet")
    a, b = _pair_columns(ds)
    by_premise: dict[str, dict[int, list[str]]] = {}
    for p, h, y in zip(ds[a], ds[b], ds["label"], strict=True):
        by_premise.setdefault(p, {}).setdefault(int(y), []).append(h)
    rng, rows = random.Random(seed), {"anchor": [], "positive": [], "negative": []}
    for premise, hyps in by_premise.items():
        if _NLI["entailment"] in hyps and _NLI["contradiction"] in hyps:
            rows["anchor"].append(premise)
            rows["positive"].append(hyps[_NLI["entailment"]][0])
            rows["negative"].append(rng.choice(hyps[_NLI["contradiction"]]))
    if not rows["anchor"]:
        raise ValueError("no premise has both an entailment and a contradiction hypothesis")
    return Dataset.from_dict(rows)


def to_objective_format(ds: Dataset, objective: str, **kwargs) -> Dataset:
    """Dispatch to :func:`to_classification`, :func:`to_regression` or :func:`to_triplets`."""
    _check_objective(objective)
    fn = {"classification": to_classification, "regression": to_regression}
    return fn.get(objective, to_triplets)(ds, **kwargs)


def make_loss(objective: str, model, **kwargs) -> torch.nn.Module:
    """The sentence-transformers loss SBERT used for ``objective``, with the paper's settings.

    classification: SoftmaxLoss over (u, v, |u - v|), 3 labels (kwargs pass the
    ``concatenation_sent_*`` flags); regression: CosineSimilarityLoss (MSE of cos vs
    label); triplet: TripletLoss, Euclidean distance, margin 1 (kwargs override both,
    e.g. ``distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.3``).
    """
    from sentence_transformers.sentence_transformer import losses

    _check_objective(objective)
    if objective == "classification":
        dim = model.get_embedding_dimension()
        return losses.SoftmaxLoss(model, dim, num_labels=3, **kwargs)
    if objective == "regression":
        return losses.CosineSimilarityLoss(model, **kwargs)
    kwargs.setdefault("distance_metric", losses.TripletDistanceMetric.EUCLIDEAN)
    kwargs.setdefault("triplet_margin", 1.0)
    return losses.TripletLoss(model, **kwargs)


def softmax_classifier_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    difference: bool = True,
    product: bool = False,
) -> torch.Tensor:
    """SBERT's classification objective: CE(softmax(W [u; v; |u - v|] + b), label).

    Args:
        u, v: (B, D) embeddings of the two sentences of each pair.
        labels: (B,) int class ids in [0, C).
        weight, bias: (C, k*D) and (C,), the trainable classifier (k = 2 + difference + product).
        difference / product: append |u - v| / u * v to the features.
    Returns: scalar mean cross-entropy. Leaves out: the encoder (u, v are given).
    Production equivalent: ``SoftmaxLoss`` (``concatenation_sent_difference`` /
    ``concatenation_sent_multiplication``).
    """
    if u.ndim != 2 or u.shape != v.shape or labels.shape != (u.shape[0],):
        raise ValueError(
            f"need u, v (B, D) and labels (B,); got {tuple(u.shape)}, {tuple(v.shape)}, "
            f"{tuple(labels.shape)}"
        )
    parts = [u, v] + ([torch.abs(u - v)] if difference else []) + ([u * v] if product else [])
    features = torch.cat(parts, dim=1)  # (B, k*D)
    if weight.shape != (bias.shape[0], features.shape[1]):
        raise ValueError(
            f"weight {tuple(weight.shape)} must be (C, {features.shape[1]}) for bias {tuple(bias.shape)}"
        )
    return F.cross_entropy(features @ weight.T + bias, labels)


def scaled_steps(full_steps: int, minimum: int = 1, cpu_cap: int | None = None) -> int:
    """Steps for the active profile: ``round(full_steps * train_steps_scale)``, >= minimum.

    ``full_steps`` is the full-profile budget (GPU); the fast profile runs a tenth of it,
    further capped at ``cpu_cap`` when given (the cap never applies to the full profile).
    """
    if full_steps < 1 or minimum < 1 or (cpu_cap is not None and cpu_cap < 1):
        raise ValueError(
            f"full_steps, minimum and cpu_cap must be >= 1, got {full_steps}, {minimum}, {cpu_cap}"
        )
    scale = profile().train_steps_scale
    steps = max(minimum, round(full_steps * scale))
    return min(steps, cpu_cap) if cpu_cap is not None and scale < 1 else steps


def freeze_lower_layers(model, train_top: int) -> tuple[int, int]:
    """Freeze a transformer's embeddings and all but its top ``train_top`` layers.

    Layers are found by parameter name (``...layer.<i>.`` or ``...layers.<i>.``, as in
    BERT and Llama-style models); parameters outside any numbered layer except the token
    embeddings (e.g. a final norm) stay trainable. Backward then stops at the first
    trainable layer, which makes a step several times cheaper: a CPU budget cut.
    Returns: (trainable, total) parameter counts.
    Production equivalent: ``param.requires_grad_(False)`` loops, or PEFT adapters.
    """
    import re

    if train_top < 1:
        raise ValueError(f"train_top must be >= 1, got {train_top}")
    pattern = re.compile(r"\.layers?\.(\d+)\.")
    named = list(model.named_parameters())
    indices = [int(m.group(1)) for n, _ in named if (m := pattern.search(n))]
    if not indices:
        raise ValueError("no numbered transformer layers (…layer.<i>. / …layers.<i>.) found")
    first_trained = max(indices) + 1 - train_top
    for name, param in named:
        m = pattern.search(name)
        frozen = int(m.group(1)) < first_trained if m else "embed" in name
        param.requires_grad_(not frozen)
    trainable = sum(p.numel() for _, p in named if p.requires_grad)
    return trainable, sum(p.numel() for _, p in named)


@dataclass
class TrainResult:
    """A finished run: the trained model, (step, loss) history, wall time and settings."""

    model: object
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    examples: int = 0


def _check_train_inputs(dataset: Dataset, loss: torch.nn.Module, steps: int, bs: int) -> None:
    if len(dataset) == 0:
        raise ValueError("empty training dataset: need at least one example")
    if steps < 1 or bs < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={bs}")
    expected = _expected_columns(loss)
    if expected is not None and list(dataset.column_names) != expected:
        raise ValueError(
            f"{type(loss).__name__} expects columns {expected} in that order; "
            f"dataset has {dataset.column_names} (see to_objective_format)"
        )


def _expected_columns(loss: torch.nn.Module) -> list[str] | None:
    name = type(loss).__name__
    return {
        "SoftmaxLoss": _COLUMNS["classification"],
        "CosineSimilarityLoss": _COLUMNS["regression"],
        "TripletLoss": _COLUMNS["triplet"],
    }.get(name)


# ------------------------------------------------------------------ the one trainer setup
# Every sentence-transformers training call of the package (objectives, contrastive,
# cross-encoder) goes through training_args() + fit(): one place for seeds, warm-up,
# quietness and the device.

HEAD_PATTERN = r"^classifier\."  # SoftmaxLoss's new head (a bi-encoder loss's parameters)


def is_cross_encoder(model) -> bool:
    """True for a sentence-transformers ``CrossEncoder`` (it has its own trainer/arguments)."""
    from sentence_transformers.cross_encoder import CrossEncoder

    return isinstance(model, CrossEncoder)


@functools.cache
def quiet_trainer_class(cross_encoder: bool = False) -> type:
    """``SentenceTransformerTrainer`` (or ``CrossEncoderTrainer``) without the model card.

    The model-card callback samples widget examples with a progress bar of its own and
    records bookkeeping we never save. (Harmless for the numbers: ``trainer.train()``
    re-seeds every generator before the first step.) Built lazily: the import is slow.
    """
    if cross_encoder:
        from sentence_transformers.cross_encoder import CrossEncoderTrainer as base
    else:
        from sentence_transformers import SentenceTransformerTrainer as base

    class QuietTrainer(base):
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """Documented hook: we never save a model card, so skip its bookkeeping."""

    return QuietTrainer


def _progress_bar(desc: str):
    """A ``TrainerCallback``: one tqdm bar per run, showing the last logged loss."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class Bar(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=state.max_steps, desc=desc, unit="step")

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.close()

    return Bar()


def training_args(
    out: str,
    *,
    batch_size: int,
    lr: float,
    seed: int,
    steps: int | None = None,
    epochs: float | None = None,
    log_every: int = 0,
    head_lr: float | None = None,
    head_pattern: str = HEAD_PATTERN,
    cross_encoder: bool = False,
    **extra,
):
    """The course's training arguments: quiet, seeded, 10% linear warm-up, no checkpoints.

    Args:
        out: output folder (a temp folder: nothing is saved there).
        steps / epochs: exactly one; ``steps`` optimiser steps (scale a budget with
            :func:`scaled_steps`, which reads the profile) or ``epochs`` passes.
        log_every: log the training loss every that many steps (0: no logging).
        head_lr: a learning rate of its own for parameters matching ``head_pattern`` (a
            new head), via ``learning_rate_mapping``.
        cross_encoder: build ``CrossEncoderTrainingArguments`` instead.
        extra: any other argument (e.g. ``batch_sampler``, ``dataloader_drop_last``).
    Returns: ``SentenceTransformerTrainingArguments`` (or the cross-encoder's).
    Production equivalent: the same class, plus evaluation, logging and saving.
    """
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps and epochs, got {steps} and {epochs}")
    if cross_encoder:
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments as cls
    else:
        from sentence_transformers import SentenceTransformerTrainingArguments as cls
    budget = {"max_steps": steps} if steps is not None else {"num_train_epochs": epochs}
    logging = {"logging_steps": log_every} if log_every else {"logging_strategy": "no"}
    return cls(
        output_dir=out,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=0.1,  # a float < 1 is a fraction of the total steps
        seed=seed,
        data_seed=seed,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,  # fit() adds one quiet bar instead
        use_cpu=not torch.cuda.is_available(),
        learning_rate_mapping={head_pattern: head_lr} if head_lr else {},
        **budget,
        **logging,
        **extra,
    )


def fit(
    model, dataset: Dataset, loss: torch.nn.Module, *, desc: str | None = None, **settings
) -> TrainResult:
    """Train ``model`` in place with the quiet trainer; returns a :class:`TrainResult`.

    Args:
        model: a SentenceTransformer or CrossEncoder (``loss`` wraps this same model).
        dataset: rows in the loss's column format, shuffled with the seed.
        desc: label of one progress bar (None: no bar).
        settings: :func:`training_args`' keywords (batch_size, lr, seed, steps or epochs, ...).
    Returns: the model (eval mode), the logged (step, loss) pairs, the wall time of
    ``trainer.train()`` alone, and the steps and examples seen.
    Production equivalent: ``SentenceTransformerTrainer(...).train()``.
    """
    from transformers.trainer_callback import PrinterCallback

    cross = is_cross_encoder(model)
    with tempfile.TemporaryDirectory(prefix="embedlab-train-") as out:
        args = training_args(out, cross_encoder=cross, **settings)
        trainer = quiet_trainer_class(cross)(
            model=model, args=args, train_dataset=dataset, loss=loss
        )
        trainer.remove_callback(PrinterCallback)  # prints a dict per log: the bar shows it
        if desc:
            trainer.add_callback(_progress_bar(desc))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    history = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    model.eval()
    steps = trainer.state.global_step
    return TrainResult(model, history, seconds, steps, steps * settings["batch_size"])


def train(
    model,
    dataset: Dataset,
    loss: torch.nn.Module,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    seed: int = 0,
    log_every: int = 5,
    progress: bool = True,
    desc: str | None = None,
    head_lr: float | None = None,
) -> TrainResult:
    """Train ``model`` in place for exactly ``steps`` optimiser steps; quiet and seeded.

    Args:
        model: a SentenceTransformer (``loss`` must wrap this same model).
        dataset: rows in the loss's format (:func:`to_objective_format`); shuffled with
            ``seed``, cycled if ``steps * batch_size`` exceeds it.
        steps: optimiser steps (use :func:`scaled_steps` for a profile-scaled budget).
        head_lr: learning rate for a new head in the loss (SoftmaxLoss's classifier);
            default: ``learning_rate`` like everything else.
    Returns: TrainResult with the model (eval mode) and the training loss every
    ``log_every`` steps. Leaves out: evaluation during training, checkpoints, saving.
    Production equivalent: ``SentenceTransformerTrainer(...).train()`` with your own
    ``SentenceTransformerTrainingArguments`` (this is a thin wrapper around it).
    """
    _check_train_inputs(dataset, loss, steps, batch_size)
    bar = (desc or type(loss).__name__) if progress else None
    return fit(model, dataset, loss, desc=bar, steps=steps, batch_size=batch_size,
               lr=learning_rate, seed=seed, log_every=log_every, head_lr=head_lr)  # fmt: skip


def loss_curve(result: TrainResult) -> Sequence[float]:
    """Just the logged loss values of a run, in step order."""
    return [loss for _, loss in result.losses]


# ------------------------------------------------------------------ a hand-written loop
# For models the trainer does not fit as they are (a bi-encoder with a head outside any
# loss, a listwise cross-encoder loss): seeded batches, AdamW with warm-up, clipping.


@dataclass
class TrainLog:
    """(step, score) learning curve, wall seconds (evaluation excluded) and steps of one run."""

    curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def seeded_batches(n: int, batch_size: int, steps: int, seed: int, group_size: int = 1):
    """``steps`` batches of row indices: seeded epochs over n rows, groups kept together.

    Rows come in groups of ``group_size`` consecutive rows (e.g. a positive and its
    negatives); whole groups are shuffled, each epoch a fresh permutation, the last
    partial epoch continued by the next. Yields: (batch_size,) int arrays.
    Production equivalent: a ``DataLoader`` with a seeded ``RandomSampler`` (no grouping).
    """
    groups, per = n // group_size, batch_size // group_size
    rng, order = np.random.default_rng(seed), np.array([], dtype=int)
    for _ in range(steps):
        while len(order) < per:
            order = np.concatenate([order, rng.permutation(groups)])
        take, order = order[:per], order[per:]
        yield (take[:, None] * group_size + np.arange(group_size)).reshape(-1)


def adamw_with_warmup(body: list, head: list, lr: float, head_lr: float, steps: int, warmup: float):
    """AdamW (weight decay 0.01) with two parameter groups, linear warm-up then decay.

    ``body``: parameters at ``lr`` (frozen ones are skipped); ``head``: a new head's
    parameters at ``head_lr``. The first ``round(warmup * steps)`` steps ramp the rate up.
    Returns: (optimizer, LambdaLR scheduler). Production equivalent:
    ``transformers.get_linear_schedule_with_warmup`` (which starts from 0, not 1/warm).
    """
    groups = [{"params": [p for p in body if p.requires_grad], "lr": lr}]
    if head:
        groups.append({"params": head, "lr": head_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    warm = max(1, round(warmup * steps))

    def factor(step: int) -> float:
        return (step + 1) / warm if step < warm else max(0.0, (steps - step) / (steps - warm + 1))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def run_steps(
    model,
    step_loss: Callable[[np.ndarray], torch.Tensor],
    optimizer: tuple,
    batches,
    params: list,
    eval_every: int = 0,
    evaluate: Callable[[], float] | None = None,
) -> TrainLog:
    """One optimiser step per batch of ``batches``: loss, backward, clip at 1, step.

    ``step_loss(idx)`` is the scalar loss of rows ``idx``; ``optimizer`` an (optimizer,
    scheduler) pair; ``params`` are clipped to gradient norm 1. ``evaluate()`` runs in
    eval mode without gradients every ``eval_every`` steps and at the end.
    Returns: TrainLog (the model is left in eval mode).
    """
    (opt, sched), batches = optimizer, list(batches)
    log, start, eval_s = TrainLog(steps=len(batches)), time.perf_counter(), 0.0
    for step, idx in enumerate(batches, start=1):
        model.train(True)
        step_loss(idx).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        if evaluate is not None and eval_every and (step % eval_every == 0 or step == log.steps):
            model.train(False)
            t0 = time.perf_counter()
            with torch.no_grad():
                log.curve.append((step, float(evaluate())))
            eval_s += time.perf_counter() - t0
    model.train(False)
    log.seconds = time.perf_counter() - start - eval_s
    return log


# ------------------------------------------------------------------ trained once, then loaded


def cached_model(
    name: str,
    build: Callable[[], object],
    load: Callable[[str], object] | None = None,
    root=None,
    marker: str = "modules.json",
):
    """A trained model cached under ``root/<name>`` (default ``home_dir()/models``).

    ``marker``: the saved file whose presence means "built" (``modules.json`` for a
    sentence-transformers model, ``adapter_config.json`` for a peft adapter).

    Loads the saved model when it exists (``load(path)``, default ``SentenceTransformer``;
    a ``CrossEncoder`` works the same way); otherwise calls ``build()`` (which trains and
    returns the model), saves it atomically (:func:`embedlab.cache.atomic_folder`) and
    returns it. ``build`` may return ``(model, {file name: text})`` to save small side
    files (e.g. settings chosen on validation) in the same folder, under the same rename.
    Put every setting that changes the result into ``name`` (e.g. the step count), so a
    different recipe never loads a stale model. If another run saved the same name first,
    its folder is kept.
    Production equivalent: ``model.save_pretrained(path)`` / ``SentenceTransformer(path)``.
    """
    from pathlib import Path

    from embedlab.cache import atomic_folder
    from embedlab.config import home_dir

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"model cache name {name!r} must be a non-empty plain folder name")
    path = Path(root or home_dir() / "models") / name
    if (path / marker).exists():
        return (load or _load_sentence_transformer)(str(path))
    built = build()
    model, files = built if isinstance(built, tuple) else (built, {})

    def fill(folder: Path) -> None:
        model.save_pretrained(str(folder))
        for fname, text in files.items():
            (folder / fname).write_text(text, encoding="utf-8")

    atomic_folder(path, fill)
    return model


def _load_sentence_transformer(path: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")
