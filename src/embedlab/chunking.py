"""Long documents for a short-window encoder: token windows and max-sim scoring.

An encoder reads at most ``max_seq_length`` tokens; the rest of a longer document is cut
off (truncation). The usual answer in asymmetric search is to **chunk**: split each
document into overlapping windows that fit, embed every window, and score a document by
its best window for the query (*max-sim*, the "MaxP" of Dai & Callan 2019).

- :func:`token_windows`: the windows of one text, as exact substrings of it, cut on the
  model's own token boundaries (so each window fits the model once special tokens and a
  prompt are added). The first window is what truncation reads.
- :func:`chunk_corpus`: every window of every document, with the document it came from.
- :func:`max_sim`: (Q, N) document scores from (Q, C) query-window scores.

Production equivalents: LangChain's ``RecursiveCharacterTextSplitter.from_huggingface_tokenizer``
or LlamaIndex's ``SentenceSplitter`` (which also respect sentence boundaries), and a vector
store that returns chunks and groups them by document.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def token_windows(text: str, tokenizer, window: int, overlap: int = 0) -> list[str]:
    """Split ``text`` into windows of at most ``window`` tokens, ``overlap`` tokens shared.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (it must return character offsets).
        window: content tokens per window (the model's limit minus special and prompt tokens).
        overlap: tokens repeated at the start of the next window, 0 <= overlap < window.
    Returns: substrings of ``text`` (sliced by character offsets, whitespace kept inside),
    in order; a text of at most ``window`` tokens gives ``[text]``, an empty text ``[""]``.
    Leaves out: sentence or paragraph boundaries (a window may end mid-sentence).
    """
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("token_windows needs a fast tokenizer (character offsets)")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
        "offset_mapping"
    ]
    if len(offsets) <= window:
        return [text]
    out, step = [], window - overlap
    for start in range(0, len(offsets), step):
        span = offsets[start : start + window]
        out.append(text[span[0][0] : span[-1][1]])
        if start + window >= len(offsets):
            break
    return out


def chunk_corpus(
    texts: Sequence[str], tokenizer, window: int, overlap: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Windows of every text, flattened.

    Returns: ``(chunks, owner, position)``: C window texts; (C,) index of the text each
    came from (non-decreasing); (C,) position of the window within its text (0 = first).
    """
    if len(texts) == 0:
        raise ValueError("chunk_corpus needs at least one text")
    chunks: list[str] = []
    owner: list[int] = []
    position: list[int] = []
    for i, t in enumerate(texts):
        w = token_windows(t, tokenizer, window, overlap)
        chunks += w
        owner += [i] * len(w)
        position += range(len(w))
    return chunks, np.asarray(owner), np.asarray(position)


def max_sim(scores: np.ndarray, owner: np.ndarray, n_docs: int) -> np.ndarray:
    """Score each document by its best window.

    Args:
        scores: (Q, C) query-window similarities.
        owner: (C,) document index of each window, non-decreasing, covering 0..n_docs-1.
    Returns: (Q, N) with ``out[q, d] = max over windows c of d of scores[q, c]``.
    """
    s, o = np.asarray(scores), np.asarray(owner)
    if s.ndim != 2 or o.ndim != 1 or s.shape[1] != len(o):
        raise ValueError(f"scores (Q, C) and owner (C,) disagree: {s.shape} vs {o.shape}")
    if len(o) == 0 or not np.array_equal(np.unique(o), np.arange(n_docs)) or (np.diff(o) < 0).any():
        raise ValueError(f"owner must be sorted and cover every document 0..{n_docs - 1}")
    starts = np.flatnonzero(np.r_[True, np.diff(o) > 0])
    return np.maximum.reduceat(s, starts, axis=1)
