"""Run config -> model, in two explicit steps: `prepare_model` (the suite's built-in resources resolved to
real folders, and the text-pretrained LM when the recipe asks for one: a one-off job, built once per machine
by rank 0 and cached), then `build_prepared` (the model registry; no side trips)."""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from bench.config import RunConfig
from bench.run.resolve import resolve_model_config
from bench.run.textlm import with_pretrained_lm
from models import registry
from models.config import ModelConfig


def prepare_model(cfg: RunConfig, meta: bool = False, rank: int = 0, log=print) -> ModelConfig:
    """The model config a machine can build: built-in resources resolved, and the LM's backbone pointed at the
    text-pretrained folder (pretraining it first when the cache lacks it; meta=True only needs the architecture)."""
    model = resolve_model_config(cfg.model)
    if not meta:
        model = dataclasses.replace(model, lm=with_pretrained_lm(model.lm, cfg.data, rank, log))
    return model


def build_prepared(model: ModelConfig, seed: int, meta: bool = False) -> nn.Module:
    return registry.build(model, seed=seed, meta=meta)


def build_model(cfg: RunConfig, meta: bool = False, rank: int = 0, log=print) -> nn.Module:
    """Both steps at once, for tools and tests: prepare_model (which may pretrain the LM), then build."""
    return build_prepared(prepare_model(cfg, meta, rank, log), cfg.seed, meta)
