"""Model config -> the model config a machine can load: the suite's built-in resources (the tiny tokenizer)
replaced by real folders in the cache."""

from __future__ import annotations

import dataclasses

from bench.cache import cache_dir
from bench.data.tokenizer import build_gemma_bpe_tokenizer, build_llama_bpe_tokenizer, build_shapes_tokenizer
from models.config import ModelConfig

BUILTIN_TOKENIZERS = {"builtin:shapes": build_shapes_tokenizer,
                      "builtin:llama_bpe": build_llama_bpe_tokenizer,   # Llama 3.2's class, trained offline
                      "builtin:gemma_bpe": build_gemma_bpe_tokenizer}   # EmbeddingGemma's class, trained offline


def _resolve_tokenizer(source: str) -> str:
    if source.startswith("builtin:"):
        if source not in BUILTIN_TOKENIZERS:
            raise ValueError(f"unknown built-in tokenizer {source!r}; known: {', '.join(BUILTIN_TOKENIZERS)}")
        return str(BUILTIN_TOKENIZERS[source](cache_dir() / "tokenizers"))
    return source


def resolve_model_config(model: ModelConfig) -> ModelConfig:
    """The model config with built-in tokenizers replaced by real tokenizer folders."""
    lm = dataclasses.replace(model.lm, tokenizer=_resolve_tokenizer(model.lm.tokenizer))
    y = dataclasses.replace(model.y_encoder, tokenizer=_resolve_tokenizer(model.y_encoder.tokenizer))
    return dataclasses.replace(model, lm=lm, y_encoder=y)
