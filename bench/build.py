"""Run config -> model: resolves the suite's built-in resources, then calls the model registry."""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from bench.config import RunConfig
from bench.resolve import resolve_model_config
from bench.textlm import with_pretrained_lm
from models import registry


def build_model(cfg: RunConfig, meta: bool = False, rank: int = 0, log=print) -> nn.Module:
    """The model of a run config. A text-pretrained LM (model.lm.text_pretraining) is built once per
    machine by rank 0 and loaded as a pretrained backbone; meta=True only needs its architecture."""
    model = resolve_model_config(cfg.model)
    if not meta:
        model = dataclasses.replace(model, lm=with_pretrained_lm(model.lm, cfg.data, rank, log))
    return registry.build(model, seed=cfg.seed, meta=meta)
