"""Models by canonical Hub id, identical online and offline.

Online they download from the Hugging Face Hub; in offline mode (``EMBEDLAB_OFFLINE=1``)
the same ids resolve to the local mirror built by ``python -m embedlab.offline build``,
and a missing one fails at once with :class:`embedlab.config.MissingOfflineAsset`.
"""

from __future__ import annotations

from embedlab.config import FULL, profile
from embedlab.offline import require_model

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
E5_SMALL = "intfloat/multilingual-e5-small"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"


def load_model(model_id: str, max_seq_length: int | None = None, device: str | None = None):
    """A ``SentenceTransformer`` by Hub id, with the profile's sequence-length cap.

    Args:
        model_id: canonical Hub id, e.g. ``MINILM``.
        max_seq_length: tokens kept per text; default = min(model's own, profile cap)
            (the fast profile truncates to 256 tokens).
    """
    require_model(model_id)  # before the heavy import: a missing model fails in < 1 s
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_id, device=device or "cpu")
    _cap_length(model, max_seq_length)
    return model


def _cap_length(model, max_seq_length: int | None) -> None:
    cap = max_seq_length or profile().max_seq_length
    if cap is not None:
        if cap < 1:
            raise ValueError(f"max_seq_length must be >= 1, got {cap}")
        model.max_seq_length = min(cap, model.max_seq_length or cap)


def raw_lm_encoder(
    model_id: str = SMOLLM, pooling: str = "mean", max_seq_length: int | None = None
):
    """A language model that was never trained for similarity, pooled into sentence vectors.

    The Transformer module loads the decoder's body (``AutoModel``: hidden states, no LM
    head); Pooling averages them over the attention mask. This is the "raw BERT" baseline
    of SBERT's Table 1 with a decoder in its place.
    """
    if pooling not in {"mean", "lasttoken", "cls", "max"}:
        raise ValueError(f"pooling={pooling!r}; expected mean, lasttoken, cls or max")
    require_model(model_id)
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    # Plain-text modality only: for a model with a chat template, sentence-transformers
    # would otherwise wrap every text in that template (system prompt included) and pool
    # over the template's tokens too.
    text_only = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
    body = Transformer(
        model_id,
        max_seq_length=max_seq_length or 512,
        modality_config=text_only,
        module_output_name="token_embeddings",
    )
    tok = body.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    pool = Pooling(body.get_embedding_dimension(), pooling_mode=pooling)
    model = SentenceTransformer(modules=[body, pool], device="cpu")
    _cap_length(model, max_seq_length)
    return model


def static_token_encoder(model_id: str = MINILM):
    """Average of a model's *input* token embeddings: a GloVe-average analogue.

    Reuses the word-embedding matrix of ``model_id`` (before any attention layer) in a
    ``sentence_transformers.models.StaticEmbedding``, which mean-pools the vectors of the
    text's word pieces (no [CLS]/[SEP]).
    """
    source = load_model(model_id)
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    hf_model = source[0].auto_model
    weights = hf_model.get_input_embeddings().weight.detach().clone()
    static = StaticEmbedding(source.tokenizer.backend_tokenizer, embedding_weights=weights)
    return SentenceTransformer(modules=[static], device="cpu")


BERT_BASE = FULL.training_start  # raw bert-base-uncased: SBERT's start, the full profile's


def static_start():
    """The course's training start on a CPU: MiniLM's input embeddings, averaged, normalised.

    A :func:`static_token_encoder` of MiniLM plus ``Normalize`` (unit vectors, as MiniLM's
    own output, so Euclidean distances and SoftmaxLoss features have a fixed scale;
    cosines are unchanged): about 50.9 STS-B test Spearman before
    training, and no attention layers, so an epoch over a few thousand pairs takes
    seconds on 2 cores. It starts untrained *for similarity* (unlike MiniLM itself), so a
    training objective has something to teach. Notebooks 04-07 train it.
    Production equivalent: ``sentence-transformers/static-retrieval-mrl-en-v1`` (a
    StaticEmbedding model trained the same way, with far more data).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    static = static_token_encoder(MINILM)
    return SentenceTransformer(modules=[static[0], Normalize()], device="cpu")


def training_start() -> tuple[object, str]:
    """The start for the training lessons in the active profile, and its one-line name.

    ``profile().training_start``: ``"static"`` (fast, CPU) is :func:`static_start`; a Hub
    id (full, GPU: raw ``bert-base-uncased``, SBERT's own start) loads that model with
    mean pooling.
    Returns: (SentenceTransformer, description).
    """
    start = profile().training_start
    if start == "static":
        return static_start(), "static start (MiniLM input embeddings, averaged)"
    return load_model(start), f"{start.split('/')[-1]}, mean pooling (SBERT's start)"


RERANKER = "cross-encoder/ms-marco-MiniLM-L-6-v2"


def load_cross_encoder(model_id: str = RERANKER, max_length: int | None = None):
    """A ``CrossEncoder`` by Hub id or local folder, with the profile's length cap.

    Args:
        model_id: canonical Hub id (default ``RERANKER``) or a saved model's folder.
        max_length: tokens per (query, document) pair; default = the profile cap.
    """
    require_model(model_id)
    from sentence_transformers.cross_encoder import CrossEncoder

    cap = max_length or profile().max_seq_length
    return CrossEncoder(model_id, max_length=cap, device=None)
