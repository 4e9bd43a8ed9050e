"""Decoder-only language models as text embedders (E5-mistral, Wang et al. 2024).

A decoder uses causal attention: token t sees tokens 0..t only, so the one hidden state
that has read the whole text is the *last* one. E5-mistral appends an EOS token to every
text and takes its final hidden state ("last-token pooling"); queries get a one-line
instruction, ``Instruct: {task}\\nQuery: {text}``, documents none.

What goes wrong in practice is padding. In a right-padded batch, ``hidden[:, -1]`` is a
pad position for every text shorter than the longest one; :func:`last_token_pool` finds
the true last position from the attention mask, for left *and* right padding.

This module also parses the JSON that an instruct model writes when asked for synthetic
training examples (:func:`extract_json`, :func:`parse_examples`), which is rarely clean.

Shapes: B batch, L tokens, D hidden size, N texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("lasttoken", "mean")
Pooling = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_hidden_mask(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Validate (B, L, D) states against a (B, L) 0/1 mask; return the mask as bool."""
    if hidden.ndim != 3:
        raise ValueError(f"hidden must be (B, L, D), got shape {tuple(hidden.shape)}")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} must be (B, L) = {tuple(hidden.shape[:2])}"
        )
    if not torch.isin(attention_mask, torch.tensor([0, 1], device=attention_mask.device)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    mask = attention_mask.bool()
    if not mask.any(dim=1).all():
        raise ValueError("a row of attention_mask is all padding: every text needs >= 1 token")
    return mask


def last_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, for left or right padding.

    Args:
        attention_mask: (B, L) 0/1, 1 on real tokens.
    Returns: (B,) long; ``L - 1`` for every row of a left-padded batch.
    """
    L = attention_mask.shape[1]
    flipped_first = attention_mask.flip(1).long().argmax(dim=1)  # first 1 from the right
    return L - 1 - flipped_first


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of each text's last real token (E5-mistral's pooling).

    Correct for left padding (the last column) and right padding (gathers at the true
    length); ``hidden[:, -1]`` is only correct for left padding.

    Args:
        hidden: (B, L, D) final hidden states.
        attention_mask: (B, L) 0/1.
    Returns: (B, D), not normalised.
    Production equivalent: ``sentence_transformers`` ``Pooling(pooling_mode="lasttoken")``.
    """
    _check_hidden_mask(hidden, attention_mask)
    pos = last_token_positions(attention_mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), pos]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states over real tokens (pads excluded, even if NaN).

    Args:
        hidden: (B, L, D); attention_mask: (B, L) 0/1.
    Returns: (B, D).
    Production equivalent: ``Pooling(pooling_mode="mean")`` in sentence-transformers.
    """
    mask = _check_hidden_mask(hidden, attention_mask).unsqueeze(-1)  # (B, L, 1)
    total = hidden.masked_fill(~mask, 0.0).sum(dim=1)
    return total / mask.sum(dim=1).to(hidden.dtype)


def format_instruction(task: str, text: str) -> str:
    """E5-mistral's query template: ``Instruct: {task}\\nQuery: {text}``.

    Applied to queries only (and to both sides of symmetric tasks such as STS); documents
    are embedded as they are. Raises ValueError on an empty task or text.
    Production equivalent: ``model.encode(queries, prompt=f"Instruct: {task}\\nQuery: ")``.
    """
    if not task.strip():
        raise ValueError("task is empty: give a one-sentence task description")
    if not text.strip():
        raise ValueError("text is empty: nothing to embed")
    return f"Instruct: {task.strip()}\nQuery: {text}"


def tokenize_with_eos(
    tokenizer, texts: Sequence[str], max_length: int, padding_side: str = "left"
) -> dict[str, torch.Tensor]:
    """Tokenize, truncate to ``max_length - 1`` tokens, append EOS, then pad.

    Truncating *before* appending keeps the EOS on texts longer than ``max_length`` (a
    plain ``tokenizer(..., truncation=True)`` would cut it off).

    Returns: ``input_ids`` and ``attention_mask``, (B, L) with L <= max_length.
    Raises: ValueError on no texts, an empty text, max_length < 2, a tokenizer without
        an EOS token, or a padding_side other than left/right.
    """
    if not texts:
        raise ValueError("no texts to tokenize")
    if any(not t.strip() for t in texts):
        raise ValueError("an empty text: every text needs content before the EOS token")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (text + EOS), got {max_length}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; set one before last-token pooling")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side={padding_side!r}; expected 'left' or 'right'")
    enc = tokenizer(list(texts), max_length=max_length - 1, truncation=True, padding=False)
    rows = [list(row) + [tokenizer.eos_token_id] for row in enc["input_ids"]]
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    return _pad(rows, pad_id, padding_side)


def _pad(rows: list[list[int]], pad_id: int, padding_side: str) -> dict[str, torch.Tensor]:
    """Pad token-id lists to (B, L) ``input_ids`` and a 0/1 ``attention_mask``."""
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(L - len(r), L) if padding_side == "left" else slice(0, len(r))
        ids[i, sl], mask[i, sl] = torch.tensor(r, dtype=torch.long), 1
    return {"input_ids": ids, "attention_mask": mask}


def check_pooled_is_eos(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, eos_token_id: int
) -> None:
    """Raise ValueError unless the token that last-token pooling reads is EOS in every row.

    Args: input_ids, attention_mask: (B, L); eos_token_id: the tokenizer's EOS id.
    """
    pos = last_token_positions(attention_mask)
    pooled = input_ids[torch.arange(input_ids.shape[0]), pos]
    bad = (pooled != eos_token_id).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"rows {bad[:5]} end in token ids {pooled[bad[:5]].tolist()}, not EOS "
            f"{eos_token_id}: append EOS (see tokenize_with_eos) before last-token pooling"
        )


# ------------------------------------------------------------------ synthetic data parsing


def extract_json(text: str) -> list[Any]:
    """Every JSON object or array embedded in free text, outermost first, in order.

    Models wrap JSON in prose or Markdown fences, emit several objects, or stop mid-way;
    this scans for ``{`` / ``[`` and keeps whatever ``json.JSONDecoder.raw_decode``
    accepts there, skipping past each decoded value. Truncated or invalid JSON is dropped.
    It does not repair JSON (no trailing-comma or single-quote fixes); production
    pipelines often ask for constrained decoding (a JSON grammar) instead.

    Raises: ValueError if ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    decoder, found, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append(value)
            i = end
        else:
            i += 1
    return found


def _dicts(value: Any) -> list[dict]:
    """The dicts in a decoded value: itself, or the dict items of a list."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def parse_examples(text: str, keys: Sequence[str]) -> list[dict[str, str]]:
    """Valid examples in a model's output: JSON objects with a non-empty string per key.

    Args:
        text: raw generated text.
        keys: required keys, e.g. ``("user_query", "positive_document",
            "hard_negative_document")``; other keys are dropped.
    Returns: list of ``{key: str}`` (stripped), possibly empty.
    Raises: ValueError on no keys or a non-str text.
    """
    if not keys:
        raise ValueError("keys is empty: name the fields an example must have")
    out = []
    for value in extract_json(text):
        for d in _dicts(value):
            if all(isinstance(d.get(k), str) and d[k].strip() for k in keys):
                out.append({k: d[k].strip() for k in keys})
    return out


def parse_string_list(text: str, allow_lines: bool = True) -> list[str]:
    """Items of a list the model was asked to write as a JSON/Python list of strings.

    Takes the non-empty strings of the first JSON array of strings in ``text``; failing
    that (``allow_lines``), the bulleted or numbered lines (``- x``, ``* x``, ``1. x``),
    the format small models fall back to. Duplicates are kept: counting them is part
    of judging the output. Returns [] when neither is found.
    """
    for value in extract_json(text):
        if isinstance(value, list):
            items = [v.strip() for v in value if isinstance(v, str) and v.strip()]
            if items:
                return items
    if not allow_lines:
        return []
    items = [re.sub(r"^\s*(?:[-*]|\d+[.)])\s+", "", line).strip() for line in text.splitlines()]
    marked = [re.match(r"^\s*(?:[-*]|\d+[.)])\s+\S", line) for line in text.splitlines()]
    return [item for item, m in zip(items, marked, strict=True) if m]


# --------------------------------------------------------------------------- embedder


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counting real tokens only, so left padding does not shift them."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


class DecoderEmbedder(nn.Module):
    """A decoder body (``AutoModel``, or a ``peft`` LoRA wrapper of one) as an embedder.

    ``forward(texts)`` keeps gradients (for contrastive fine-tuning); ``encode`` is the
    batched, sorted-by-length, no-grad inference path. Leaves out what a library adds:
    multi-GPU, caching, fp16. Production equivalent: a sentence-transformers model with
    ``Pooling("lasttoken")`` and an EOS-appending tokenizer, as E5-mistral ships.

    Args:
        model: callable as ``model(input_ids=, attention_mask=, position_ids=)``,
            returning ``.last_hidden_state`` (B, L, D).
        tokenizer: with an EOS token (also the pad token if none is set).
        pooling: "lasttoken", "mean", or a callable (hidden, mask) -> (B, D).
        max_length: tokens per text, EOS included.
        append_eos: append EOS to every text (E5-mistral) or not.
        padding_side: "left" or "right".
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        pooling: Pooling = "lasttoken",
        max_length: int = 512,
        append_eos: bool = True,
        padding_side: str = "left",
    ) -> None:
        super().__init__()
        if not callable(pooling) and pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS} or a callable")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={padding_side!r}; expected 'left' or 'right'")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer, self.pooling = model, tokenizer, pooling
        self.max_length, self.append_eos, self.padding_side = max_length, append_eos, padding_side

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """(B, L) input_ids and attention_mask, EOS appended if ``append_eos``."""
        if self.append_eos:
            return tokenize_with_eos(self.tokenizer, texts, self.max_length, self.padding_side)
        if not texts or any(not t.strip() for t in texts):
            raise ValueError("no texts, or an empty text: every text needs content")
        enc = self.tokenizer(
            list(texts), max_length=self.max_length, truncation=True, padding=True,
            padding_side=self.padding_side, return_tensors="pt",
        )  # fmt: skip
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states -> (B, D) with the configured pooling."""
        if callable(self.pooling):
            return self.pooling(hidden, attention_mask)
        fn = last_token_pool if self.pooling == "lasttoken" else mean_pool
        return fn(hidden, attention_mask)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed one batch with gradients. Returns: (B, D), not normalised."""
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=position_ids_from_mask(batch["attention_mask"]),
        )
        return self.pool(out.last_hidden_state, batch["attention_mask"])

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        normalize: bool = True,
        sort_by_length: bool = True,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed many texts. Returns: (N, D) float32 in the input order.

        ``sort_by_length`` batches similar lengths together (less padding, faster);
        results do not depend on it when padding is handled correctly.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        if not texts:
            raise ValueError("no texts to encode")
        order = np.argsort([-len(t) for t in texts], kind="stable") if sort_by_length else None
        ordered = [texts[i] for i in order] if order is not None else texts
        starts = range(0, len(ordered), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="encode", unit="batch")
        was_training = self.training
        self.eval()
        chunks = [self(ordered[s : s + batch_size]).float() for s in starts]
        self.train(was_training)
        emb = torch.cat(chunks)
        if normalize:
            emb = F.normalize(emb, dim=-1)
        out = emb.cpu().numpy()
        if order is not None:
            out = out[np.argsort(order)]
        return out
