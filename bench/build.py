"""Run config -> model: resolves the suite's built-in resources, then calls the model registry."""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from bench.cache import cache_dir
from bench.config import RunConfig
from bench.data.tokenizer import build_shapes_tokenizer
from bench.textlm import with_pretrained_lm
from models import registry
from models.config import ModelConfig

BUILTIN_TOKENIZERS = {"builtin:shapes": build_shapes_tokenizer}


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


def build_model(cfg: RunConfig, meta: bool = False, rank: int = 0, log=print) -> nn.Module:
    """The model of a run config. A text-pretrained LM (model.lm.text_pretraining) is built once per
    machine by rank 0 and loaded as a pretrained backbone; meta=True only needs its architecture."""
    model = resolve_model_config(cfg.model)
    if not meta:
        model = dataclasses.replace(model, lm=with_pretrained_lm(model.lm, cfg.data, rank, log))
    return registry.build(model, seed=cfg.seed, meta=meta)
