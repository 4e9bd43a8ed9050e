"""LoRA contrastive training of a decoder embedder (notebook 08), trained once and cached.

E5-mistral (Wang et al. 2024) turns a decoder into an embedder by training LoRA adapters
with InfoNCE on (instructed query, document) pairs and pooling the last token. This
module holds that recipe for SmolLM2-135M-Instruct on two CPU cores: the training pairs
(SNLI entailment, SciFact title -> abstract), the loop (one source per step, in turns),
and a cache keyed by a content hash of the recipe, so ``make artifacts`` trains once and
notebook 08 loads the adapter. Leaves out: hard negatives, multi-GPU, gradient
checkpointing, mixed precision. Production equivalent: sentence-transformers'
``SentenceTransformerTrainer`` with a ``peft`` adapter and ``MultipleNegativesRankingLoss``.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from embedlab.llm import DecoderEmbedder, format_instruction
from embedlab.losses import info_nce
from embedlab.models import SMOLLM
from embedlab.train import TrainLog, adamw_with_warmup, run_steps, seeded_batches

NLI_TASK = "Given a premise, retrieve a hypothesis that is entailed by the premise"
TITLE_TASK = "Given the title of a scientific paper, retrieve its abstract"
Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class LoraRecipe:
    """Every setting that changes the trained adapter (its cache key hashes all of them).

    ``top_layers``: adapters on the top n decoder layers only (the backward pass stops
    there, so a step is cheaper), None for all. ``query_tokens``/``doc_tokens``: max
    tokens per side, EOS included. ``temperature``: InfoNCE's tau.
    """

    base: str = SMOLLM
    rank: int = 16
    alpha: int = 32
    top_layers: int | None = 10
    steps: int = 80
    batch_size: int = 16
    lr: float = 1e-3
    warmup: float = 0.1
    temperature: float = 0.05
    query_tokens: int = 48
    doc_tokens: int = 64
    seed: int = 0

    def key(self) -> str:
        """12 hex digits of the recipe's settings: a different recipe, a different folder."""
        from embedlab.common import settings_key

        return settings_key(asdict(self))

    def check(self) -> None:
        """Raises ValueError on a setting that cannot train."""
        if self.steps < 1 or self.batch_size < 2 or self.rank < 1:
            raise ValueError(f"steps >= 1, batch_size >= 2 and rank >= 1 expected; got {self}")
        if not (self.lr > 0 and self.temperature > 0 and 0 <= self.warmup < 1):
            raise ValueError(f"lr, temperature > 0 and 0 <= warmup < 1 expected; got {self}")


def nli_pairs(limit: int | None = None, seed: int = 0) -> Pairs:
    """(premise, entailed hypothesis) pairs of SNLI validation (the local copy has no train), seeded."""
    from embedlab.data import load_snli

    rows = load_snli("validation")
    rows = rows.filter(lambda r: r["label"] == 0)
    pairs = list(zip(rows["premise"], rows["hypothesis"], strict=True))
    random.Random(seed).shuffle(pairs)
    return pairs[:limit]


def title_pairs(exclude: set[str], seed: int = 0, train=None) -> Pairs:
    """(title, abstract) pairs of SciFact abstracts cited by a *train* claim.

    Abstracts in ``exclude`` (e.g. every abstract cited by a test claim) are left out.
    ``train``: SciFact train (full corpus), loaded when not given.
    Returns: (title, abstract) pairs in a seeded order (``exclude`` is how an evaluation
    keeps its own abstracts out of them).
    """
    train = train or _scifact("train")
    cited = sorted({d for docs in train.qrels.values() for d in docs} - exclude)
    cited = [d for d in cited if train.corpus[d]["title"].strip()]
    random.Random(seed).shuffle(cited)
    return [(train.corpus[d]["title"], train.corpus[d]["text"]) for d in cited]


DEV_CLAIMS = 40  # SciFact train claims held out to choose the recipe on


def _scifact(split: str):
    from embedlab.data import load_scifact

    return load_scifact(split, corpus="full")


def dev_claims(seed: int = 0, train=None) -> list[str]:
    """Ids of the SciFact *train* claims held out as the dev split (seeded, sorted)."""
    ids = sorted((train or _scifact("train")).qrels)
    return sorted(random.Random(seed).sample(ids, DEV_CLAIMS))


def held_out_docs(train=None) -> set[str]:
    """Abstracts never used as training pairs: cited by a test claim or by a dev claim."""
    train = train or _scifact("train")
    cited = {d for docs in _scifact("test").qrels.values() for d in docs}
    return cited | {d for q in dev_claims(train=train) for d in train.qrels[q]}


def training_sources(recipe: LoraRecipe) -> list[tuple[str, Pairs]]:
    """[(instruction, pairs)] the recipe trains on: SNLI entailment, SciFact title -> abstract.

    Enough rows for ``recipe.steps`` steps in turns without repeating a pair.
    """
    per_source = (recipe.steps // 2 + 1) * recipe.batch_size
    train = _scifact("train")  # loaded once for the held-out set and the pairs
    titles = title_pairs(held_out_docs(train), recipe.seed, train)
    return [(NLI_TASK, nli_pairs(per_source, recipe.seed)), (TITLE_TASK, titles)]


def add_adapters(body: torch.nn.Module, recipe: LoraRecipe) -> torch.nn.Module:
    """``body`` wrapped with fresh LoRA adapters on every projection of the chosen layers."""
    from peft import LoraConfig, get_peft_model

    n = body.config.num_hidden_layers
    layers = None if recipe.top_layers is None else list(range(n - recipe.top_layers, n))
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, target_modules=targets,
                        layers_to_transform=layers, layers_pattern="layers" if layers else None)  # fmt: skip
    torch.manual_seed(recipe.seed)
    return get_peft_model(body, config)


def train_lora(
    peft_body: torch.nn.Module,
    tokenizer,
    sources: list[tuple[str, Pairs]],
    recipe: LoraRecipe,
    steps: int | None = None,
    progress: bool = False,
    evaluate=None,
    eval_every: int = 0,
) -> tuple[TrainLog, list[tuple[int, int, float]]]:
    """InfoNCE steps on ``peft_body``'s adapters, one source per step, in turns.

    Step s draws ``batch_size`` pairs of source ``s % len(sources)`` (seeded epochs);
    queries get the source's instruction (:func:`embedlab.llm.format_instruction`),
    documents none; both sides are last-token pooled with left padding. ``steps``: stop
    after the first ``steps`` of the recipe's run (same batches and learning-rate
    schedule, so a few live steps retrace a full build's first steps). ``evaluate()``
    is scored every ``eval_every`` steps into the log's curve (as
    :func:`embedlab.train.run_steps`).
    Returns: (TrainLog, [(step, source, loss)]); the body is left in eval mode.
    """
    recipe.check()
    steps = recipe.steps if steps is None else steps
    if not 1 <= steps <= recipe.steps:
        raise ValueError(f"steps must be in [1, recipe.steps={recipe.steps}], got {steps}")
    if not sources or any(len(p) < recipe.batch_size for _, p in sources):
        raise ValueError(f"every source needs >= batch_size={recipe.batch_size} pairs")
    q_side = DecoderEmbedder(peft_body, tokenizer, "lasttoken", recipe.query_tokens)
    d_side = DecoderEmbedder(peft_body, tokenizer, "lasttoken", recipe.doc_tokens)
    per = [(steps - k + len(sources) - 1) // len(sources) for k in range(len(sources))]
    draws = [iter(seeded_batches(len(p), recipe.batch_size, n, recipe.seed + k))
             for k, ((_, p), n) in enumerate(zip(sources, per, strict=True))]  # fmt: skip
    batches = [(s % len(sources), next(draws[s % len(sources)])) for s in range(steps)]
    params = [p for p in peft_body.parameters() if p.requires_grad]
    losses: list[tuple[int, int, float]] = []
    bar = _bar(steps, "LoRA steps") if progress else None

    def step_loss(batch: tuple[int, object]) -> torch.Tensor:
        src, idx = batch
        task, pairs = sources[src]
        q = [format_instruction(task, pairs[i][0]) for i in idx]
        loss = info_nce(q_side(q), d_side([pairs[i][1] for i in idx]),
                        recipe.temperature, symmetric=False)  # fmt: skip
        losses.append((len(losses) + 1, src, float(loss.detach())))
        if bar is not None:
            bar.update(1)
        return loss

    opt = adamw_with_warmup(params, [], recipe.lr, recipe.lr, recipe.steps, recipe.warmup)
    log = run_steps(peft_body, step_loss, opt, batches, params, eval_every, evaluate)
    if bar is not None:
        bar.close()
    return log, losses


def _bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)


# ------------------------------------------------------------------ trained once, then loaded


def adapter_dir(recipe: LoraRecipe, root: Path | None = None) -> Path:
    """Where the recipe's adapter is cached: ``<artifacts_dir()>/lora-<recipe.key()>``."""
    from embedlab.config import artifacts_dir

    return Path(root or artifacts_dir()) / f"lora-{recipe.key()}"


def load_base(recipe: LoraRecipe):
    """(decoder body without its LM head, tokenizer) of ``recipe.base``, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embedlab.offline import require_model

    require_model(recipe.base)
    tok = AutoTokenizer.from_pretrained(recipe.base)
    lm = AutoModelForCausalLM.from_pretrained(recipe.base)
    return lm.model.eval(), tok


def build_adapter(recipe: LoraRecipe, root: Path | None = None, progress: bool = True) -> Path:
    """Train the recipe's adapter unless it is cached; save it atomically. Returns its folder.

    The folder holds peft's ``adapter_config.json`` and weights, ``recipe.json`` and
    ``losses.json`` ([step, source, loss] per step, for the notebook's loss curve);
    :func:`embedlab.train.cached_model` does the caching.
    """
    from embedlab.train import cached_model

    def build():
        body, tok = load_base(recipe)
        peft_body = add_adapters(body, recipe)
        log, losses = train_lora(peft_body, tok, training_sources(recipe), recipe,
                                 progress=progress)  # fmt: skip
        record = {"seconds": round(log.seconds, 1), "losses": losses}
        return peft_body, {"recipe.json": json.dumps(asdict(recipe), indent=1),
                           "losses.json": json.dumps(record)}  # fmt: skip

    path = adapter_dir(recipe, root)
    cached_model(path.name, build, load=str, root=path.parent, marker="adapter_config.json")
    return path


def load_adapter(body: torch.nn.Module, recipe: LoraRecipe, root: Path | None = None):
    """(``body`` with the cached adapter, the training record) of a built recipe.

    Raises FileNotFoundError naming the build command when the adapter is not cached.
    """
    from peft import PeftModel

    path = adapter_dir(recipe, root)
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(
            f"no trained LoRA adapter at {path}: build it once with `make artifacts` "
            "(python -m embedlab.lora build), or train it live with embedlab.lora.train_lora"
        )
    record = json.loads((path / "losses.json").read_text("utf-8"))
    return PeftModel.from_pretrained(body, str(path)).eval(), record


RECIPE = LoraRecipe()  # the recipe notebook 08 loads and `make artifacts` builds


def main(argv: list[str] | None = None) -> int:
    """``python -m embedlab.lora build``: train and cache :data:`RECIPE`'s adapter."""
    from embedlab.common import build_command

    return build_command("lora", lambda: build_adapter(RECIPE), argv)


if __name__ == "__main__":
    raise SystemExit(main())
